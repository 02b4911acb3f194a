// Opening a volume's index so that a damaged database never stops the volume for good.
//
// The index is a cache of the filesystem: everything in it can be found again by a full
// scan, except the records of read-only flags btrdupd cleared and must restore. So:
//  - a damaged database (garbage, truncated, or pages that fail SQLite's check) is moved
//    aside as `<db>.corrupt-<UTC time>` (its -journal/-wal/-shm companions alike, named
//    `<db>.corrupt-<time>-journal` ...), logged as an ERROR, and replaced by a new, empty
//    index: the scanner then does a full scan. The read-only flip records that can still
//    be read from it are carried into the new index, so the session restores those
//    flags at start as it always does;
//  - a `-wal` file without its database (or next to an empty one) would be deleted by
//    SQLite silently: it is moved aside the same way and logged;
//  - a database of another application or from a newer btrdupd is not damaged: it is
//    refused (FailedPrecondition) and left exactly as it is.
// `verify` runs the full page check first (after a run met a damaged page: DataLoss);
// otherwise only what opening the file reveals is checked.

#ifndef BTRDUPD_DAEMON_INDEX_RECOVERY_H_
#define BTRDUPD_DAEMON_INDEX_RECOVERY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/index.h"

namespace btrdupd {

// `volume` names the volume in log lines; `now` stamps a set-aside file's name.
absl::StatusOr<std::unique_ptr<VolumeIndex>> OpenIndexRecovering(const std::string& db_path,
                                                                  bool verify,
                                                                  absl::string_view volume,
                                                                  absl::Time now);

// The name a damaged database at `db_path` is moved to at `now`.
std::string SetAsidePath(const std::string& db_path, absl::Time now);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_INDEX_RECOVERY_H_
