// What a one-shot run did per volume, and `--json`: the whole run as one JSON object on
// standard output, for backup scripts.
//
//   {"version": "...", "exit_code": 0, "dry_run": false,
//    "volumes": [{"volume": "/mnt/data", "ok": true, "error": null,
//                 "duration_seconds": 1.5, "interrupted": false,
//                 "scan": {"kind": "full", "files_seen": N, "files_added": N,
//                          "files_changed": N, "files_removed": N, "errors": N},
//                 "files_hashed": N, "prefixes_read": N, "hashes_copied": N,
//                 "bytes_read": N, "groups": N, "files_deduped": N,
//                 "bytes_shared": N, "bytes_freed": N, "files_already_shared": N,
//                 "files_changed_since_hashing": N, "skipped": {"<kind>": N, ...},
//                 "files_waiting": N, "next_eligible": "<RFC 3339>" | null}, ...]}
//
// A volume that failed has "ok": false, its "error", and only the figures it reached.
// In a dry run "files_deduped" and "bytes_shared" are what would be; "bytes_freed" is 0.
// "shared" and "freed": core/freed_space.h.

#ifndef BTRDUPD_DAEMON_RUN_REPORT_H_
#define BTRDUPD_DAEMON_RUN_REPORT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "daemon/metrics.h"
#include "daemon/volume_session.h"

namespace btrdupd {

struct VolumeOutcome {
  std::string volume;  // canonical mount path once resolved, else as given
  bool ok = false;
  std::string error;   // why not ok
  std::optional<VolumeSummary> summary;
  std::optional<VolumeMetrics> metrics;  // index figures after the run (when open)
  absl::Duration duration;
};

// One line of JSON (no trailing newline), as above.
std::string OneShotJson(const std::vector<VolumeOutcome>& outcomes, bool dry_run,
                        int exit_code);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_RUN_REPORT_H_
