// Runs external programs from tests (mkfs.btrfs, mount, btrfs subvolume ...).
//
// Programs are started directly (no shell) unless RunShell is used. The
// search path is the caller's PATH followed by the sbin directories, so tools
// such as mkfs.btrfs and losetup are found under Bazel's minimal test PATH.

#ifndef BTRDUPD_TESTS_TESTING_COMMAND_H_
#define BTRDUPD_TESTS_TESTING_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace btrdupd {
namespace testing {

struct CommandResult {
  // The exit status, or 128 + signal number when the program was killed.
  int exit_code = 0;
  std::string stdout_text;
  std::string stderr_text;

  bool ok() const { return exit_code == 0; }
};

// Runs argv[0] with arguments argv[1..] and waits for it. Returns an error
// only if the program could not be started; a non-zero exit is a result.
// REQUIRES: !argv.empty().
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv);

// Runs `command` through /bin/sh -c.
absl::StatusOr<CommandResult> RunShell(absl::string_view command);

// Runs argv and turns a non-zero exit into an Internal error whose message
// holds the command line, the exit code and the program's stderr. Returns
// the program's stdout on success.
absl::StatusOr<std::string> RunChecked(const std::vector<std::string>& argv);

// As RunChecked, through /bin/sh -c.
absl::StatusOr<std::string> RunShellChecked(absl::string_view command);

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_COMMAND_H_
