// One-shot mode, btrdupd's default: each volume in turn is scanned (only what changed,
// or a full walk when needed), every eligible file is hashed and every duplicate group
// deduped and verified; then btrdupd exits.
//
// Per volume it prints one summary line on standard output (files scanned, hashed,
// deduped, bytes shared and bytes freed (core/freed_space.h), skipped with reasons, files
// still waiting); with --dry-run
// also every group it would dedupe with the bytes that would be saved. Progress goes to
// stderr: one updating line on a terminal, occasional log lines otherwise. A volume
// that cannot be opened (not btrfs, unreadable, not root, bad config, backend missing)
// is reported with an ERROR line naming it and the others are still processed.
//
// SIGINT/SIGTERM stop the run between two units of work: what was done is committed,
// read-only flags are restored, and the interrupted volume counts as failed.

#ifndef BTRDUPD_DAEMON_ONE_SHOT_H_
#define BTRDUPD_DAEMON_ONE_SHOT_H_

#include <string>
#include <vector>

#include "daemon/volume_session.h"

namespace btrdupd {

// Processes `volumes` in order with `options` (from flags: see one_shot.cc) and
// returns the exit code (daemon/exit_codes.h).
int RunOneShot(const std::vector<std::string>& volumes, const SessionOptions& options);

// SessionOptions for one-shot mode from the command line (--dry-run, --no-wait,
// --jobs and the shared session flags).
SessionOptions OneShotOptionsFromFlags();

// One line for the summary of `volume`, as printed.
std::string FormatSummary(absl::string_view volume, const VolumeSummary& summary,
                          bool dry_run, absl::Time now);

// `path` with control characters, backslashes and invalid UTF-8 written as \xNN, so
// every printed path stays on one line and can be told apart.
std::string PrintablePath(absl::string_view path);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_ONE_SHOT_H_
