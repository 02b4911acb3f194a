// btrdupd's own command-line parsing on top of Abseil flag definitions.
//
// Flags are defined with ABSL_FLAG next to the code that reads them, in any file under
// daemon/. ParseCommandLine() accepts exactly those flags, written `--dry-run` or
// `--dry_run`, `--name=value` or `--name value`, `--flag`/`--noflag` for booleans, `-v`
// for `--verbose`, `-q` for `--quiet` and `-h` for `--help`; `--` ends the options. Unlike Abseil's parser it
// never exits: an unknown option or a bad value comes back as InvalidArgument whose
// message names the option, so main() can print it and exit with the usage-error code.
//
// FlagsHelp() lists the same flags, each with its help text and default, so --help is
// complete by construction. A non-boolean flag's help text may start with a metavariable
// in capitals followed by ": " ("DIR: where databases go"), shown as `--db-dir=DIR`.

#ifndef BTRDUPD_DAEMON_COMMAND_LINE_H_
#define BTRDUPD_DAEMON_COMMAND_LINE_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace btrdupd {

struct CommandLine {
  std::vector<std::string> positional;  // in order
  std::set<std::string> given;          // names of the flags set (Abseil's: dry_run)
};

// Sets the flags named in argv[1..] and returns what was given.
absl::StatusOr<CommandLine> ParseCommandLine(int argc, char** argv);

// One entry per btrdupd flag, sorted by name, ready to print under "Options:".
std::string FlagsHelp();

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_COMMAND_LINE_H_
