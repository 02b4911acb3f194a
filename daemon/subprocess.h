// Runs an external program without a shell and captures what it prints.
//
// The program is started with fork + execvp, so arguments are passed as they are:
// paths with spaces, quotes or newlines need no quoting. `stdin_data` is given to it
// on standard input (from a memfd, so a large input never deadlocks against its
// output); standard output and standard error are captured together, up to
// `max_output_bytes` (the rest is read and dropped so the program never blocks).
//
// ProcessOptions add what a root daemon needs of a helper program: its own session and
// process group (setsid), so a Ctrl-C on btrdupd's terminal does not reach it and it
// can be killed as a whole; a deadline after which the whole group is killed
// (SIGKILL); and file descriptors it inherits (everything else btrdupd holds is
// close-on-exec), so it can be handed files btrdupd opened as /proc/self/fd/N.

#ifndef BTRDUPD_DAEMON_SUBPROCESS_H_
#define BTRDUPD_DAEMON_SUBPROCESS_H_

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace btrdupd {

struct ProcessOptions {
  // Standard input.
  absl::string_view stdin_data;
  // Bytes of output kept.
  size_t max_output_bytes = 1 << 20;
  // Start the program in a new session and process group (setsid).
  bool new_session = false;
  // Kill the program's process group (or the program, without new_session) with
  // SIGKILL once this much time has passed. InfiniteDuration: no deadline.
  absl::Duration deadline = absl::InfiniteDuration();
  // Descriptors (>= 3) the program inherits at the same numbers; they stay
  // close-on-exec in btrdupd.
  std::vector<int> inherit_fds;
  // Polled about every 200 ms while the program runs; when it returns true the
  // program (its group, with new_session) is killed with SIGKILL (btrdupd is stopping).
  std::function<bool()> cancel;
};

struct ProcessResult {
  int exit_code = 0;    // exit status, or 128 + signal number if killed
  int term_signal = 0;  // the signal that killed it, 0 if it exited
  bool timed_out = false;  // killed by btrdupd at the deadline (term_signal SIGKILL)
  bool cancelled = false;  // killed by btrdupd because `cancel` said so
  std::string output;   // stdout and stderr interleaved as written
};

// Returns an error only when the program could not be started (fork/pipe failed);
// a program that is not found exits 127 with the reason in `output`.
// REQUIRES: !argv.empty().
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         const ProcessOptions& options);
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         absl::string_view stdin_data = "",
                                         size_t max_output_bytes = 1 << 20);

// The full path of `program` found in $PATH (or `program` itself if it contains a
// '/'), if it names an executable file. NotFound names the PATH searched.
absl::StatusOr<std::string> FindExecutable(absl::string_view program);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_SUBPROCESS_H_
