#include "daemon/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace {

absl::Status ErrnoError(absl::string_view what, int err) {
  return btrdupd::ErrnoToStatus(err, what);
}

bool WriteAllFd(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         access(path.c_str(), X_OK) == 0;
}

}  // namespace

absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         absl::string_view stdin_data,
                                         size_t max_output_bytes) {
  ProcessOptions options;
  options.stdin_data = stdin_data;
  options.max_output_bytes = max_output_bytes;
  return RunProcess(argv, options);
}

absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         const ProcessOptions& options) {
  const absl::string_view stdin_data = options.stdin_data;
  const size_t max_output_bytes = options.max_output_bytes;
  for (int fd : options.inherit_fds) {
    if (fd < 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("descriptor ", fd, " cannot be inherited by ", argv[0]));
    }
  }
  // Standard input: a memfd holding stdin_data, rewound.
  int in_fd = memfd_create("btrdupd-stdin", MFD_CLOEXEC);
  if (in_fd < 0) return ErrnoError("memfd_create", errno);
  if (!WriteAllFd(in_fd, stdin_data) || lseek(in_fd, 0, SEEK_SET) != 0) {
    const int err = errno;
    close(in_fd);
    return ErrnoError("writing the input of " + argv[0], err);
  }
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    const int err = errno;
    close(in_fd);
    return ErrnoError("pipe2", err);
  }
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(in_fd);
    close(out[0]);
    close(out[1]);
    return ErrnoError("fork", err);
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on. The daemon blocks its signals
    // (daemon/signals.h) and ignores SIGPIPE; the program gets the defaults back.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    if (options.new_session) setsid();
    dup2(in_fd, STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    dup2(out[1], STDERR_FILENO);
    for (int fd : options.inherit_fds) fcntl(fd, F_SETFD, 0);
    execvp(args[0], args.data());
    const char* reason = std::strerror(errno);
    (void)!write(STDERR_FILENO, "cannot run ", 11);
    (void)!write(STDERR_FILENO, args[0], std::strlen(args[0]));
    (void)!write(STDERR_FILENO, ": ", 2);
    (void)!write(STDERR_FILENO, reason, std::strlen(reason));
    (void)!write(STDERR_FILENO, "\n", 1);
    _exit(127);
  }
  close(in_fd);
  close(out[1]);
  ProcessResult result;
  // The whole group with setsid (the program's pid is its group's id).
  const pid_t kill_target = options.new_session ? -pid : pid;
  const absl::Time deadline = options.deadline == absl::InfiniteDuration()
                                  ? absl::InfiniteFuture()
                                  : absl::Now() + options.deadline;
  char buf[65536];
  while (true) {
    if (deadline != absl::InfiniteFuture() || options.cancel) {
      const absl::Duration left = deadline - absl::Now();
      int wait_ms = static_cast<int>(
          std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 60 * 60 * 1000));
      if (options.cancel) wait_ms = std::min(wait_ms, 200);
      struct pollfd pfd = {out[0], POLLIN, 0};
      const int ready = left <= absl::ZeroDuration() ? 0 : poll(&pfd, 1, wait_ms);
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0 && absl::Now() >= deadline) {
        kill(kill_target, SIGKILL);
        result.timed_out = true;
        break;
      }
      if (ready == 0 && options.cancel && options.cancel()) {
        kill(kill_target, SIGKILL);
        result.cancelled = true;
        break;
      }
      if (ready == 0) continue;
    }
    ssize_t n = read(out[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    const size_t room = max_output_bytes > result.output.size()
                            ? max_output_bytes - result.output.size()
                            : 0;
    result.output.append(buf, std::min(room, static_cast<size_t>(n)));
  }
  close(out[0]);
  if (options.new_session) {
    // Once the program has exited (left unreaped, so its pid and group id cannot be
    // reused yet), nothing it started may outlive it.
    siginfo_t info;
    while (waitid(P_PID, pid, &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
    }
    kill(kill_target, SIGKILL);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError(absl::StrCat("waitpid ", argv[0]), errno);
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
    result.exit_code = 128 + result.term_signal;
  }

  return result;
}

absl::StatusOr<std::string> FindExecutable(absl::string_view program) {
  if (program.find('/') != absl::string_view::npos) {
    std::string path(program);
    if (IsExecutableFile(path)) return path;
    return absl::NotFoundError(absl::StrCat(program, " is not an executable file"));
  }
  const char* env = std::getenv("PATH");
  const std::string search = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
  for (absl::string_view dir : absl::StrSplit(search, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", program);
    if (IsExecutableFile(candidate)) return candidate;
  }
  return absl::NotFoundError(
      absl::StrCat(program, " not found in PATH (", search, ")"));
}

}  // namespace btrdupd
