#include "tests/testing/command.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace btrdupd {
namespace testing {
namespace {

absl::Status ErrnoError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

// The child's PATH: the caller's, then the system sbin directories.
std::string ChildPath() {
  const char* path = getenv("PATH");
  std::string result = (path != nullptr && *path != '\0') ? path : "/usr/bin:/bin";
  absl::StrAppend(&result, ":/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin");
  return result;
}

// Reads both pipes until each reaches EOF.
absl::Status DrainPipes(int out_fd, int err_fd, std::string* out, std::string* err) {
  std::array<pollfd, 2> fds = {{{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}}};
  std::array<std::string*, 2> sinks = {out, err};
  int open_count = 2;
  char buffer[65536];
  while (open_count > 0) {
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("poll");
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fds[i].fd = -1;  // poll ignores negative descriptors.
        --open_count;
        continue;
      }
      sinks[i]->append(buffer, static_cast<size_t>(n));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("RunCommand: empty argv");
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe2");
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return ErrnoError("pipe2");
  }
  absl::Cleanup close_read_ends = [&] {
    close(out_pipe[0]);
    close(err_pipe[0]);
  };

  // Everything the child needs is prepared before fork().
  std::vector<char*> c_argv;
  for (const std::string& arg : argv) c_argv.push_back(const_cast<char*>(arg.c_str()));
  c_argv.push_back(nullptr);
  const std::string path = ChildPath();

  pid_t pid = fork();
  if (pid < 0) {
    close(out_pipe[1]);
    close(err_pipe[1]);
    return ErrnoError("fork");
  }
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    setenv("PATH", path.c_str(), 1);
    execvp(c_argv[0], c_argv.data());
    dprintf(STDERR_FILENO, "exec %s: %s\n", c_argv[0], strerror(errno));
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);

  CommandResult result;
  absl::Status drained =
      DrainPipes(out_pipe[0], err_pipe[0], &result.stdout_text, &result.stderr_text);
  int wait_status = 0;
  while (waitpid(pid, &wait_status, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waitpid");
  }
  if (!drained.ok()) return drained;
  if (WIFEXITED(wait_status)) {
    result.exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    result.exit_code = 128 + WTERMSIG(wait_status);
  }
  return result;
}

absl::StatusOr<CommandResult> RunShell(absl::string_view command) {
  return RunCommand({"/bin/sh", "-c", std::string(command)});
}

absl::StatusOr<std::string> RunChecked(const std::vector<std::string>& argv) {
  absl::StatusOr<CommandResult> result = RunCommand(argv);
  if (!result.ok()) return result.status();
  if (!result->ok()) {
    return absl::InternalError(absl::StrCat("`", absl::StrJoin(argv, " "), "` exited with ",
                                            result->exit_code, ": ", result->stderr_text,
                                            result->stdout_text));
  }
  return std::move(result->stdout_text);
}

absl::StatusOr<std::string> RunShellChecked(absl::string_view command) {
  return RunChecked({"/bin/sh", "-c", std::string(command)});
}

}  // namespace testing
}  // namespace btrdupd
