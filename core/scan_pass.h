// ScanPass: the work of one Scanner::Run() (core/scanner.h) on one volume, shared by the
// full walk (core/full_scan.cc) and the incremental pass (core/incremental_scan.cc).
//
// Internal to the scanner; other code uses core/scanner.h.
//
// Every method returns a non-OK status only for what must stop the pass: the index
// failing, or Cancelled when ScanOptions::should_stop said so. Trouble with one file or
// directory is counted in the report and the pass goes on.

#ifndef BTRDUPD_CORE_SCAN_PASS_H_
#define BTRDUPD_CORE_SCAN_PASS_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/exclude.h"
#include "core/index.h"
#include "core/scanner.h"
#include "core/status_macros.h"
#include "core/volume_fs.h"

namespace btrdupd {

// The directory at the volume root that holds the database; never indexed.
inline constexpr char kStateDirName[] = ".btrdupd";
// The inode number of every subvolume's root directory.
inline constexpr uint64_t kSnapshotRootInode = 256;

class ScanPass {
 public:
  ScanPass(VolumeFs* fs, VolumeIndex* index, const VolumeConfig& config, Clock* clock,
           const ScanOptions& options, ScanReport* report);

  // The subvolume paths being indexed this pass: a walk stops at every subvolume
  // boundary, and keeps the index rows of these (they are walked as their own units).
  void set_indexed_subvolume_paths(absl::flat_hash_set<std::string> paths) {
    indexed_subvolume_paths_ = std::move(paths);
  }

  // Transactions: Begin() once, Commit() at safe points; rows written in between are
  // committed every options.batch_rows rows.
  absl::Status Begin();
  absl::Status Commit();

  // Walks the subvolume rooted at `sub.path` whole, reconciling every directory with the
  // index. `root` is its opened root directory.
  absl::Status WalkSubvolume(const VolumeSubvolume& sub, const VolumeDir& root);

  // Applies what changed in the subvolume since `since_generation`.
  absl::Status UpdateSubvolume(const VolumeSubvolume& sub, const VolumeDir& root,
                               uint64_t since_generation);

  // A snapshot linked to `source` (core/snapshot_scan.cc): gives rows to what differs from
  // the source. `source_since` (the snapshot's creation transaction) compares the source's
  // side too, when the snapshot is linked now; later passes compare only the snapshot's
  // own changes since `self_since`.
  absl::Status CompareSnapshot(const VolumeSubvolume& sub, const VolumeSubvolume& source,
                               const VolumeDir& root, std::optional<uint64_t> source_since,
                               uint64_t self_since);

  void AddError(const absl::Status& status);

 private:
  // What the pass knows about the subvolume it is working on.
  struct SubvolumeContext {
    uint64_t id = 0;
    std::string path;
    uint64_t dev = 0;          // st_dev of the subvolume's directories
    uint64_t generation = 0;   // listed before looking: recorded for files seen
    // Inodes written since the last pass (incremental only), sorted by inode number: a
    // pass after a dedupe sees tens of thousands, and a sorted vector holds them in a
    // third of a hash map's memory (bench/many_files_bench.sh's peak RSS).
    std::vector<InodeChange> changed;
    // The change of `ino`, or nullptr.
    const InodeChange* FindChanged(uint64_t ino) const {
      auto it = std::lower_bound(
          changed.begin(), changed.end(), ino,
          [](const InodeChange& c, uint64_t key) { return c.ino < key; });
      return it != changed.end() && it->ino == ino ? &*it : nullptr;
    }
  };
  struct PendingDir {
    int64_t dir_id = 0;
    std::string path;
    uint64_t ino = 0;
  };
  // A name in a re-listed directory that must be looked at more closely.
  struct Candidate {
    std::string name;
    int64_t file_id = 0;  // its file row, 0 if none
  };
  struct RelistedDir {
    int64_t dir_id = 0;
    std::string path;
    uint64_t ino = 0;
    std::vector<Candidate> candidates;
  };

  struct SnapshotContext {
    SubvolumeContext ctx;
    uint64_t source_id = 0;
    std::string source_path;
    // Inodes already given a row or recorded as missing in this comparison.
    mutable absl::flat_hash_set<uint64_t> handled;
  };
  absl::Status CompareSnapshotFile(const SnapshotContext& snap, uint64_t ino, bool strict);
  absl::Status CompareSnapshotDir(const SnapshotContext& snap, uint64_t ino);
  absl::Status ObserveSnapshotFile(const SnapshotContext& snap, const std::string& path,
                                   const VolumeStat& st);
  absl::Status MarkSourceRowsMissing(const SnapshotContext& snap, const DirEntryRecord& row);
  absl::Status WalkSnapshotSubtree(const SnapshotContext& snap, const std::string& start);
  absl::StatusOr<int64_t> SnapshotDirRow(const SubvolumeContext& ctx, const std::string& path);

  // Full walk from one directory down (iterative: no descriptor is held per level).
  absl::Status WalkFrom(const SubvolumeContext& ctx, PendingDir start);
  // The stat of one listed entry: from `bulk` (VolumeDir::StatRegularFiles) when it has
  // it and it says the file is tracked, else StatEntry.
  absl::StatusOr<VolumeStat> StatOf(VolumeDir& dir, const VolumeDirEntry& entry,
                                    const absl::flat_hash_map<uint64_t, VolumeStat>& bulk) const;
  // Reconciles one open directory with its rows; queues its subdirectories.
  absl::Status ReconcileDir(const SubvolumeContext& ctx, const PendingDir& at,
                            VolumeDir& dir, std::vector<PendingDir>* queue);

  // Incremental phases.
  absl::Status RelistChangedDir(const SubvolumeContext& ctx, uint64_t ino,
                                std::vector<RelistedDir>* out,
                                absl::flat_hash_set<int64_t>* relisted);
  absl::Status ApplyCandidates(const SubvolumeContext& ctx, const RelistedDir& relisted);
  absl::Status RestatChangedFile(const SubvolumeContext& ctx, uint64_t ino,
                                 const absl::flat_hash_set<int64_t>& relisted);

  // Observes a regular file unless its row already says the same (inode, and
  // SameContent in core/index_records.h).
  // `known` is its row when the caller has it; otherwise `file_id` (0 = no row).
  absl::Status ObserveIfChanged(const SubvolumeContext& ctx, int64_t dir_id,
                                absl::string_view name, const VolumeStat& st,
                                int64_t file_id, const FileRecord* known);
  // Brings a directory row for a new directory at `path` into the index.
  absl::StatusOr<int64_t> AddDir(const SubvolumeContext& ctx, const std::string& path,
                                 uint64_t ino);

  absl::Status RemoveFileRow(int64_t file_id);
  absl::Status RemoveDirRow(int64_t dir_id);
  // RemoveDirRow or RemoveFileRow, as the listing row says.
  absl::Status RemoveEntryRow(const DirEntryRecord& row);
  absl::Status Wrote();
  absl::Status CheckStop();
  void ReportProgress(const SubvolumeContext& ctx);
  bool IsStateDir(const SubvolumeContext& ctx, absl::string_view dir_path,
                  absl::string_view name) const;
  // True when the entry at `path` of `type` is excluded by the configuration: it is
  // neither indexed nor opened, and a row it has leaves the index.
  bool IsExcluded(absl::string_view path, EntryType type) const;
  // True when `st` (a directory) is the root of another subvolume or another mount.
  bool IsBoundary(const SubvolumeContext& ctx, const VolumeStat& st) const {
    return st.dev != ctx.dev;
  }

  VolumeFs* const fs_;
  VolumeIndex* const index_;
  const VolumeConfig& config_;
  const StabilityPolicy policy_;
  Clock* const clock_;
  const ScanOptions& options_;
  ScanReport* const report_;
  absl::flat_hash_set<std::string> indexed_subvolume_paths_;
  ExcludeList excludes_;  // from config_.exclude (validated when the config was parsed)
  int rows_in_batch_ = 0;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_SCAN_PASS_H_
