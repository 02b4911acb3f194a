#include "tests/testing/daemon_process.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/testing/files.h"

namespace btrdupd {
namespace testing {

std::string DaemonBinaryPath() {
  for (const char* var : {"TEST_SRCDIR", "RUNFILES_DIR"}) {
    const char* dir = getenv(var);
    if (dir != nullptr) {
      std::string path = absl::StrCat(dir, "/btrdupd/daemon/btrdupd");
      if (access(path.c_str(), X_OK) == 0) return path;
    }
  }
  return "daemon/btrdupd";
}

std::string CanonicalPath(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) != nullptr ? std::string(buf) : path;
}

bool WaitFor(const std::function<bool()>& done, absl::Duration deadline) {
  const absl::Time end = absl::Now() + deadline;
  while (absl::Now() < end) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return done();
}

DaemonProcess::DaemonProcess(const std::vector<std::string>& argv,
                             const std::string& log_path)
    : log_path_(log_path) {
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 2);
      dup2(fd, 1);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
}

DaemonProcess::~DaemonProcess() {
  if (running()) {
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
  }
}

bool DaemonProcess::running() {
  if (exited_ || pid_ <= 0) return false;
  int status;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return true;
}

int DaemonProcess::Signal(int sig, absl::Duration timeout) {
  kill(pid_, sig);
  if (!WaitFor([&] { return !running(); }, timeout)) {
    kill(pid_, SIGKILL);
    WaitFor([&] { return !running(); }, absl::Seconds(10));
    return -1;
  }
  return exit_code_;
}

std::string DaemonProcess::Log() const {
  absl::StatusOr<std::string> text = ReadFile(log_path_);
  return text.ok() ? *text : "";
}

}  // namespace testing
}  // namespace btrdupd
