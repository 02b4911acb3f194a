// FakeVolumeFs: an in-memory btrfs volume for the scanner's logic tests.
//
// It models what the scanner relies on: a tree of directories, regular files, symlinks
// and fifos; subvolumes (each with its own st_dev, inode numbers and generation, the
// root directory being inode 256); snapshots (a copy of a subvolume's tree that keeps
// inode numbers and transids, with parent_uuid set); another filesystem mounted over a
// directory (a different st_dev, not a subvolume); and btrfs's change tracking: every
// mutation is one transaction that stamps the inodes it writes (and the directories whose
// entries change) with a new transid and raises their subvolume's generation. A
// subvolume records the transaction that created it (created_generation), and
// InodePath finds an inode by walking its subvolume. tests/volume_fs_contract_test.cc
// holds all of this to RealVolumeFs on btrfs.
//
// Error injection: FailStat/FailOpen make lstat or opening a path return a given status.
//
// Paths are relative to the volume root, as in core/volume_fs.h. Mutations CHECK-fail
// (abort) on misuse, since they are test set-up. Not thread-safe.

#ifndef BTRDUPD_TESTS_TESTING_FAKE_VOLUME_FS_H_
#define BTRDUPD_TESTS_TESTING_FAKE_VOLUME_FS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "core/volume_fs.h"

namespace btrdupd {
namespace testing {

class FakeVolumeFs : public VolumeFs {
 public:
  static constexpr uint64_t kRootSubvolumeId = 5;

  FakeVolumeFs();
  ~FakeVolumeFs() override;

  // --- Test set-up: each call is one transaction ---
  // Creates the file, or rewrites it in place (same inode) with a new size, mtime and
  // ctime.
  void WriteFile(const std::string& path, uint64_t size);
  void MakeDir(const std::string& path);  // parents must exist
  void MakeDirs(const std::string& path);  // creates missing parents too
  void Symlink(const std::string& path);
  void MakeFifo(const std::string& path);
  void HardLink(const std::string& existing, const std::string& path);
  // Removes a file, symlink or a whole directory tree.
  void Remove(const std::string& path);
  void Rename(const std::string& from, const std::string& to);
  // Changes the inode without changing size or mtime: a chmod (its ctime moves).
  void TouchMetadata(const std::string& path);
  // Rewrites the inode and its extent items with size, mtime and ctime kept: what a
  // btrfs dedupe does.
  void RewriteExtents(const std::string& path);
  // utimensat: the mtime is set to `mtime_ns`, the ctime moves.
  void SetMtime(const std::string& path, int64_t mtime_ns);
  // Returns the new subvolume's id.
  uint64_t CreateSubvolume(const std::string& path);
  uint64_t Snapshot(const std::string& source, const std::string& path,
                    bool read_only = false);
  void DeleteSubvolume(const std::string& path);
  // Mounts an empty foreign filesystem over the directory at `path`; the foreign
  // filesystem's root is returned by path afterwards, e.g. for WriteFile under it.
  void MountForeign(const std::string& path);
  // Makes the volume root's own subvolume a snapshot (parent_uuid set).
  void MarkRootAsSnapshotOf(const std::string& parent_uuid) {
    subvolumes_[kRootSubvolumeId].parent_uuid = parent_uuid;
  }
  // Raises a subvolume's generation by `n` transactions without changing any inode.
  void AdvanceGeneration(const std::string& subvol_path, uint64_t n);

  void FailStat(const std::string& path, absl::Status status);
  void FailOpen(const std::string& path, absl::Status status);
  void ClearFailures();

  uint64_t InodeOf(const std::string& path);
  uint64_t GenerationOf(const std::string& subvol_path);

  // Counters of calls, for "costs in proportion to the changes" checks.
  int64_t dirs_read() const { return dirs_read_; }
  int64_t entries_statted() const { return entries_statted_; }
  int64_t bulk_stats() const { return bulk_stats_; }  // VolumeDir::StatRegularFiles calls
  // The time the last change to a file was stamped with (file times start in 2100).
  absl::Time last_file_time() const { return absl::FromUnixNanos(clock_ns_); }
  // Later changes are stamped `d` later (each change is otherwise 1 us after the last).
  void AdvanceFileTime(absl::Duration d) { clock_ns_ += absl::ToInt64Nanoseconds(d); }
  int64_t paths_statted() const { return paths_statted_; }  // Stat(path) calls

  // --- VolumeFs ---
  std::string root() const override { return "/fake"; }
  absl::StatusOr<std::vector<VolumeSubvolume>> ListSubvolumes() override;
  absl::StatusOr<std::unique_ptr<VolumeDir>> OpenDir(absl::string_view path) override;
  absl::StatusOr<VolumeStat> Stat(absl::string_view path) override;
  absl::StatusOr<std::vector<InodeChange>> ChangedInodesSince(absl::string_view subvol_path,
                                                              uint64_t generation) override;
  absl::StatusOr<std::string> InodePath(absl::string_view subvol_path, uint64_t ino) override;

  struct Node;

 private:
  class Dir;
  struct Subvolume {
    uint64_t id = 0;
    std::string uuid;
    std::string parent_uuid;
    bool read_only = false;
    uint64_t generation = 0;
    uint64_t created_generation = 0;  // the transaction that created it
    uint64_t next_ino = 257;
    std::shared_ptr<Node> root;
  };

  uint64_t Begin();  // starts a transaction, returns its transid
  void Stamp(Node* node, uint64_t transid);
  std::shared_ptr<Node> Lookup(absl::string_view path) const;
  std::shared_ptr<Node> ParentOf(const std::string& path, std::string* name) const;
  std::shared_ptr<Node> NewNode(const std::shared_ptr<Node>& parent, int type);
  std::string PathOfSubvolume(const Subvolume& sub) const;
  bool FindPath(const Node* from, const Node* target, const std::string& prefix,
                std::string* out) const;
  // The subvolume whose root directory is at `path`, or null.
  std::shared_ptr<Node> SubvolumeRootAt(absl::string_view path) const;
  VolumeStat StatOf(const Node& node) const;

  uint64_t transid_ = 10;
  uint64_t next_dev_ = 100;
  uint64_t next_subvol_id_ = 256;
  uint64_t next_foreign_ino_ = 1000;  // inodes of foreign (mounted) filesystems
  // File times (mtime, ctime), in 2100: later than any test clock, so a file's own times
  // never start its stability wait before the scan that sees it (tests set waits with
  // their clock).
  int64_t clock_ns_ = 4'102'444'800'000'000'000;
  std::shared_ptr<Node> root_;
  std::map<uint64_t, Subvolume> subvolumes_;  // by id
  absl::flat_hash_map<uint64_t, uint64_t> subvol_by_dev_;
  absl::flat_hash_map<std::string, std::shared_ptr<Node>> hidden_by_mounts_;
  absl::flat_hash_map<std::string, absl::Status> stat_failures_;
  absl::flat_hash_map<std::string, absl::Status> open_failures_;
  int64_t dirs_read_ = 0;
  int64_t entries_statted_ = 0;
  int64_t bulk_stats_ = 0;
  int64_t paths_statted_ = 0;
};

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_FAKE_VOLUME_FS_H_
