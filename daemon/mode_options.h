// Which options mean something in which mode, so that none is silently ignored.
//
// btrdupd has four modes, chosen by one option each: one-shot (the default), --daemon,
// --status and --daemon-status. Every other option belongs to some of them (the table
// in mode_options.cc); --help, --version, --print-config and -v belong to all. An option
// given in a mode it does not belong to is a usage error naming the option and the
// modes it is for ("--dry-run is for one-shot runs only, not for --daemon"), as is
// giving two mode options at once. main() checks this before any volume is touched.

#ifndef BTRDUPD_DAEMON_MODE_OPTIONS_H_
#define BTRDUPD_DAEMON_MODE_OPTIONS_H_

#include <set>
#include <string>

#include "absl/status/statusor.h"

namespace btrdupd {

enum class RunMode { kOneShot, kDaemon, kStatus, kDaemonStatus, kExplain };

// The mode the given options choose; InvalidArgument naming both when two mode options
// are given. `given` holds flag names as Abseil spells them (dry_run).
absl::StatusOr<RunMode> ModeOf(const std::set<std::string>& given);

// OK when every option in `given` means something in `mode`; else InvalidArgument
// naming the first one that does not (dashed, as the user types it) and its modes.
absl::Status CheckOptionsForMode(RunMode mode, const std::set<std::string>& given);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_MODE_OPTIONS_H_
