#include "tests/testing/daemon_process.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/testing/command.h"
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

absl::StatusOr<std::unique_ptr<DaemonTestDir>> DaemonTestDir::Create(bool own_test_tmpdir) {
  char templ[] = "/tmp/btrdupd-XXXXXX";
  if (mkdtemp(templ) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp /tmp/btrdupd-XXXXXX: ", strerror(errno)));
  }
  std::unique_ptr<DaemonTestDir> dir(new DaemonTestDir());
  dir->path_ = templ;
  const char* old = getenv("TEST_TMPDIR");
  if (old != nullptr) dir->saved_tmpdir_ = old;
  if (own_test_tmpdir) setenv("TEST_TMPDIR", dir->path_.c_str(), 1);
  dir->socket_dir_ = dir->path_ + "/sock";
  if (mkdir(dir->socket_dir_.c_str(), 0755) != 0) {
    return absl::InternalError(absl::StrCat("mkdir ", dir->socket_dir_, ": ", strerror(errno)));
  }
  return dir;
}

DaemonTestDir::~DaemonTestDir() {
  if (saved_tmpdir_.has_value()) {
    setenv("TEST_TMPDIR", saved_tmpdir_->c_str(), 1);
  } else {
    unsetenv("TEST_TMPDIR");
  }
  RunCommand({"rm", "-rf", path_}).IgnoreError();
}

}  // namespace testing
}  // namespace btrdupd
