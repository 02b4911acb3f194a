// When is a full scan of a volume due?
//
// A full scan runs (see core/scanner.h):
//  - at once when the volume has never completed one (first run), or when one was
//    started and did not finish (the process was killed or stopped): it is continued;
//  - at once on --force-rescan (the caller passes ScanMode::kForceFull);
//  - when an incremental pass found a subvolume whose generation moved on by more than
//    max_generation_gap since it was last seen: then at the first full_scan_hour (local
//    time) that is at least min_hours_between_full_scans after the last full scan.
//    Incremental passes go on meanwhile, so nothing is missed in the wait.
//
// The state lives in the index's metadata (keys below), so it survives restarts.
//
// Thread-compatible.

#ifndef BTRDUPD_CORE_SCAN_POLICY_H_
#define BTRDUPD_CORE_SCAN_POLICY_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/config.h"
#include "core/index.h"

namespace btrdupd {

// Metadata keys (VolumeIndex::GetMeta/SetMeta).
inline constexpr char kMetaLastFullScan[] = "scan.last_full";        // unix seconds
inline constexpr char kMetaFullScanPending[] = "scan.full_pending";  // "1" while running
inline constexpr char kMetaFullScanDone[] = "scan.full_done";        // subvol ids done
inline constexpr char kMetaFullScanWanted[] = "scan.full_wanted";    // why one is due
inline constexpr char kMetaFullScanWantedSince[] = "scan.full_wanted_since";  // unix seconds
inline constexpr char kMetaLastIncremental[] = "scan.last_incremental";  // unix seconds
// The exclude patterns the index was last fully reconciled with (one per line). When
// the configuration's list differs, the next pass is a full scan: files newly excluded
// leave the index, files no longer excluded enter it.
inline constexpr char kMetaExclude[] = "scan.exclude";

struct FullScanState {
  bool ever_completed = false;  // a full scan finished at least once
  bool pending = false;         // one started and did not finish
  bool wanted = false;          // a generation gap asked for one
  absl::Time last_full = absl::InfinitePast();
  absl::Time wanted_since = absl::InfinitePast();  // when the gap was first seen
};

absl::StatusOr<FullScanState> LoadFullScanState(VolumeIndex* index);

// When the next full scan should run, given its state, at `now`:
// `now` (or earlier) when one is due at once; absl::InfiniteFuture() when none is needed;
// otherwise the time described above.
absl::Time NextFullScanTime(const FullScanState& state, const VolumeConfig& config,
                            absl::Time now, absl::TimeZone zone);

// For a run that was not going at the scheduled time (one-shot mode, from cron at
// another hour): when the full scan a generation gap asked for was scheduled, counted
// from when the gap was seen — the first full_scan_hour at least
// min_hours_between_full_scans after the last full scan and not before the gap was
// seen. A time at or before `now` means it was missed and is due now.
// InfiniteFuture() when none is wanted.
// Clock steps (both functions): a last full scan or a gap recorded later than `now`
// (the wall clock was stepped back since) counts as seen `now`, so the schedule is not
// put off by the size of the step; a clock stepped forward makes a wanted scan due.
absl::Time MissedFullScanTime(const FullScanState& state, const VolumeConfig& config,
                              absl::Time now, absl::TimeZone zone);

// The same, read from the index (for the daemon's schedule and its status reply).
absl::StatusOr<absl::Time> NextFullScanDue(VolumeIndex* index, const VolumeConfig& config,
                                           absl::Time now,
                                           absl::TimeZone zone = absl::LocalTimeZone());

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_SCAN_POLICY_H_
