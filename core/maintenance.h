// Maintenance: when a volume's database is due for VACUUM or a dedupe-state reset.
//
// Two periodic jobs keep a long-running daemon honest:
//   - VACUUM every `vacuum_interval_days`, run only when the volume is idle, gives back
//     the pages freed by deleted files;
//   - ResetDedupeStates every `dedup_reset_interval_days` forgets which files were
//     deduped (hashes are kept), so everything is re-verified by FIEMAP: extents that
//     were unshared since (defragment, rewrite in place, balance) are found again.
// Each is recorded in the volume index's metadata with its time (keys below, values in
// whole Unix seconds) and shown in the daemon's status.
//
// A database that has never seen maintenance counts its intervals from the first time
// the daemon served it (key kMetaMaintenanceSince, written by LoadMaintenanceTimes);
// a fresh database has nothing to compact or re-verify yet.
//
// The due logic (NextVacuum, NextDedupeReset, DueMaintenance) is pure; the two
// functions that touch the index only read and write metadata and call the index's own
// Vacuum() / ResetDedupeStates().

#ifndef BTRDUPD_CORE_MAINTENANCE_H_
#define BTRDUPD_CORE_MAINTENANCE_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/config.h"
#include "core/index.h"

namespace btrdupd {

inline constexpr char kMetaLastVacuum[] = "last_vacuum";
inline constexpr char kMetaLastDedupeReset[] = "last_dedupe_reset";
inline constexpr char kMetaMaintenanceSince[] = "maintenance_since";

struct MaintenanceTimes {
  absl::Time since;  // when the daemon first served this database
  std::optional<absl::Time> last_vacuum;
  std::optional<absl::Time> last_dedupe_reset;
};

struct MaintenancePolicy {
  // Zero or negative: never.
  absl::Duration vacuum_interval = absl::Hours(24 * 30);
  absl::Duration dedupe_reset_interval = absl::Hours(24 * 30);
};

// The policy a volume's configuration asks for (vacuum_interval_days,
// dedup_reset_interval_days).
MaintenancePolicy MaintenancePolicyOf(const VolumeConfig& config);

enum class MaintenanceTask { kNone, kDedupeReset, kVacuum };

// When the next job of each kind is due (InfiniteFuture() if never).
absl::Time NextVacuum(const MaintenanceTimes& times, const MaintenancePolicy& policy);
absl::Time NextDedupeReset(const MaintenanceTimes& times, const MaintenancePolicy& policy);
// The earlier of the two.
absl::Time NextMaintenance(const MaintenanceTimes& times, const MaintenancePolicy& policy);

// The job to run at `now`, if any. A due reset goes first, so that a vacuum due at the
// same time compacts what the reset rewrote.
MaintenanceTask DueMaintenance(const MaintenanceTimes& times,
                               const MaintenancePolicy& policy, absl::Time now);

// A first pass leaves the database loose: rows grow when their hash is written and the
// indexes are filled in no order, so its pages end about 70 % full, and a VACUUM gives
// back about 15 % of the file (bench/many_files_bench.sh prints the bytes per file).
// True after a pass whose full scan found at least half of the files it saw new, and at
// least kVacuumAfterFilesAdded of them (below that, the slack is under a megabyte).
inline constexpr int64_t kVacuumAfterFilesAdded = 10000;
bool VacuumAfterPass(bool full_scan, int64_t files_seen, int64_t files_added);
// True when free pages (rows deleted, indexes dropped by a schema migration) are at
// least a quarter of the database file and at least kVacuumFreeBytes.
inline constexpr int64_t kVacuumFreeBytes = int64_t{4} << 20;
bool VacuumForFreePages(const VolumeIndex::FileSpace& space);

// Reads the times from `index`; the first call on a database records `now` as
// kMetaMaintenanceSince. Clock steps: a recorded time later than `now` (the wall clock
// was stepped back since) is read as `now`, so no job is put off by the size of the
// step; a clock stepped forward makes the jobs due at once, each once (running one
// records the new time).
absl::StatusOr<MaintenanceTimes> LoadMaintenanceTimes(VolumeIndex& index, absl::Time now);

// Runs `task` on `index` and records `now` as its time (kNone does nothing).
absl::Status RunMaintenance(VolumeIndex& index, MaintenanceTask task, absl::Time now);

// Meta time values: whole Unix seconds in decimal. Parse errors name the key.
std::string FormatMetaTime(absl::Time t);
absl::StatusOr<absl::Time> ParseMetaTime(absl::string_view key, absl::string_view value);

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_MAINTENANCE_H_
