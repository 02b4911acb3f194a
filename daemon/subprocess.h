// Runs an external program without a shell and captures what it prints.
//
// The program is started with fork + execvp, so arguments are passed as they are:
// paths with spaces, quotes or newlines need no quoting. `stdin_data` is given to it
// on standard input (from a memfd, so a large input never deadlocks against its
// output); standard output and standard error are captured together, up to
// `max_output_bytes` (the rest is read and dropped so the program never blocks).

#ifndef BTRDUPD_DAEMON_SUBPROCESS_H_
#define BTRDUPD_DAEMON_SUBPROCESS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace btrdupd {

struct ProcessResult {
  int exit_code = 0;    // exit status, or 128 + signal number if killed
  std::string output;   // stdout and stderr interleaved as written
};

// Returns an error only when the program could not be started (fork/pipe failed);
// a program that is not found exits 127 with the reason in `output`.
// REQUIRES: !argv.empty().
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         absl::string_view stdin_data = "",
                                         size_t max_output_bytes = 1 << 20);

// The full path of `program` found in $PATH (or `program` itself if it contains a
// '/'), if it names an executable file. NotFound names the PATH searched.
absl::StatusOr<std::string> FindExecutable(absl::string_view program);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_SUBPROCESS_H_
