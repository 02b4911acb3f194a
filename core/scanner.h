// Scanner: keeps a volume's index (core/index.h) equal to what is on disk.
//
// One Run() is one pass over a volume, through VolumeFs (core/volume_fs.h):
//
//  - Full scan: every subvolume is walked (getdents + lstat) and each directory is
//    reconciled against the index: rows for names no longer there are removed, new and
//    changed regular files >= min_file_size are observed (restarting their stability
//    wait), unchanged ones are left alone. Nested subvolumes of the same filesystem are
//    walked as their own units; other mounts are never entered; `.btrdupd` at the volume
//    root is never indexed; with dedup_snapshots=false snapshot subvolumes below the
//    volume root are not indexed (the root itself always is). Runs on the first pass (empty index), on ScanMode::kForceFull, and when a
//    generation gap over max_generation_gap asked for one and NextFullScanDue() has come.
//  - Snapshots of a subvolume indexed in the same pass (parent_uuid, or the link the
//    index keeps) are not walked: they are linked to their source (core/index.h,
//    "Snapshots") and only the inodes either side wrote after the snapshot was taken
//    are compared (core/snapshot_scan.cc), in a full scan too; later passes compare
//    what the snapshot itself wrote since. Sources are done before their snapshots.
//  - Incremental pass: per subvolume, only the inodes written since the generation
//    recorded last time (VolumeFs::ChangedInodesSince): changed directories are re-listed
//    (removed and renamed entries leave the index, new ones enter it, new subdirectories
//    are walked), changed files are re-statted. New subvolumes are walked whole; deleted
//    ones are dropped. Costs in proportion to the changes, not to the volume.
//
// Crash safety: writes go in transactions of ScanOptions::batch_rows rows. A subvolume's
// generation is recorded only after its changes are in the index, and a full scan is
// remembered as pending until it completes, so a pass killed at any moment is redone by
// the next one and ends equal to a clean scan.
//
// Excludes: paths the configuration's `exclude` globs match (core/exclude.h) are never
// opened nor indexed (a directory matched is not entered, a subvolume matched not
// walked); rows they had leave the index. The list the index was reconciled with is
// kept in its metadata (kMetaExclude): a changed list makes the next pass a full scan.
//
// A file that vanishes, or a directory or file that cannot be read, never stops a pass:
// it is removed (vanished) or left as it was, and counted in ScanReport::errors.
//
// A file whose inode changed without a change of inode number, size, mtime or ctime
// (btrfs dedupe itself, which rewrites extent items, and atime) keeps its state, and the
// incremental pass learns that from the inode item alone (no stat), so files btrdupd
// deduped cost one index lookup each in the next pass. The ctime tells a rewrite that
// kept its size and set its mtime back (utimensat) from a dedupe; a chmod, chown or
// xattr change moves it too, so such a file is hashed again. (Rows from before schema
// version 6 have no ctime until they change: size and mtime decide for them.) A buffered
// write reaches the inode item only when its data is written back, so an incremental
// pass sees it after the writeback (the daemon: within the kernel's dirty expiry and a
// scan interval); meanwhile the hasher's own fstat checks and the kernel's byte compare
// keep every dedupe safe.
//
// Thread-compatible: one Run() at a time. `should_stop` may be set from another thread.

#ifndef BTRDUPD_CORE_SCANNER_H_
#define BTRDUPD_CORE_SCANNER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/index.h"
#include "core/volume_fs.h"

namespace btrdupd {

enum class ScanMode {
  kAuto,       // incremental, or full when the rules above say so
  kForceFull,  // --force-rescan: full scan now
};

enum class ScanKind { kIncremental, kFull };

const char* ScanKindName(ScanKind kind);  // "incremental" / "full"

// Handed to ScanOptions::progress after every directory listed.
struct ScanProgress {
  ScanKind kind = ScanKind::kIncremental;
  std::string subvolume;   // path of the subvolume being scanned ("" = volume root)
  int64_t dirs_listed = 0;
  int64_t files_seen = 0;  // regular files looked at so far in this pass
};

struct ScanReport {
  ScanKind kind = ScanKind::kIncremental;
  int64_t files_seen = 0;
  int64_t files_added = 0;
  int64_t files_changed = 0;
  int64_t files_removed = 0;  // file rows removed one by one (see also dirs_removed)
  int64_t dirs_listed = 0;
  int64_t dirs_removed = 0;   // directory rows removed with their contents
  int64_t subvolumes_added = 0;
  int64_t subvolumes_removed = 0;
  int64_t subvolumes_walked = 0;  // walked whole (full scan, new, or lost their rows)
  // Read-only subvolumes whose generation did not move: not searched, opened or written.
  int64_t subvolumes_unchanged = 0;
  int64_t errors = 0;
  std::vector<std::string> first_errors;  // up to kMaxReportedErrors messages
  absl::Duration duration;
  // A generation gap asked for a full scan that is not due yet; it runs at this time.
  absl::Time next_full_scan = absl::InfiniteFuture();

  static constexpr int kMaxReportedErrors = 10;
};

struct ScanOptions {
  // Called after each directory listed (cheap: the caller throttles what it prints).
  std::function<void(const ScanProgress&)> progress;
  // Checked between directories; when it returns true the pass commits what it did and
  // returns Cancelled. The next Run() continues consistently.
  std::function<bool()> should_stop;
  // Index rows written per transaction.
  int batch_rows = 4000;
  // The zone full_scan_hour is read in.
  absl::TimeZone time_zone = absl::LocalTimeZone();
  // One-shot runs: a full scan a generation gap scheduled for a time that has passed
  // (MissedFullScanTime, core/scan_policy.h) runs now, whatever the hour. The daemon,
  // awake at full_scan_hour, leaves it false.
  bool catch_up_missed_full_scan = false;
};

class Scanner {
 public:
  // Borrows everything; all must outlive the Scanner.
  Scanner(VolumeFs* fs, VolumeIndex* index, const VolumeConfig& config, Clock* clock,
          ScanOptions options = ScanOptions());

  // One pass. Errors: the index failing (the pass stops; what was committed stays
  // consistent), listing subvolumes failing, Cancelled when should_stop said so.
  absl::StatusOr<ScanReport> Run(ScanMode mode);

 private:
  VolumeFs* const fs_;
  VolumeIndex* const index_;
  const VolumeConfig config_;
  Clock* const clock_;
  const ScanOptions options_;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_SCANNER_H_
