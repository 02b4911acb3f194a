// VolumeFs: everything the scanner needs from one mounted btrfs volume, as an interface.
//
// core/scanner.h walks directories and asks for changed inodes only through this
// interface, so its logic is tested against an in-memory fake
// (tests/testing/fake_volume_fs.h) and runs for real over ioctl/ through
// daemon/real_volume_fs.h.
//
// Paths are byte strings relative to the volume root ("" = the root), '/'-separated,
// never starting or ending with '/', exactly as core/index.h stores them.
//
// Contract of an implementation:
//  - ListSubvolumes() returns the subvolumes reachable under the volume root on the same
//    filesystem and the same mount, the root's own subvolume included (path ""), each
//    with the generation read at that moment. Subvolumes hidden by another mount, or
//    outside the mounted tree, are not listed.
//  - OpenDir() and Stat() follow no symlink in any component and cross no mount: a path
//    that leads through a symlink or onto another mount is NotFound, like one where
//    nothing is there. Callers still check the returned directory's inode and device (a
//    directory may have been replaced by another).
//  - Every entry type and stat comes from one lstat-like look (no symlink following).
//  - ChangedInodesSince(subvol, G) lists the inodes of that subvolume whose item was
//    written in a transaction after G (transid > G): files whose data or metadata
//    changed, and directories whose entries changed. Deleted inodes are not listed.
//    Each comes with the size, mtime and ctime its item holds; an update not yet in the
//    item (btrfs' delayed inodes, and a buffered write, whose new size and times reach
//    the item only when its data is written back) lands there with a transid above the
//    generation that ListSubvolumes() reports now, so a later call lists the inode again.
//    A dedupe rewrites the item (new transid) but keeps its size, mtime and ctime; a
//    write, chmod, chown, utimensat or rename moves its ctime.
//  - InodePath(subvol, ino) names one path of an inode inside a subvolume (any type).
//  - Errors are absl::Status with the errno's meaning (NotFound, PermissionDenied, ...)
//    and the path in the message.
//
// Thread-compatible: one scanner uses one VolumeFs at a time.

#ifndef BTRDUPD_CORE_VOLUME_FS_H_
#define BTRDUPD_CORE_VOLUME_FS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace btrdupd {

enum class EntryType {
  kUnknown,  // the directory did not say (DT_UNKNOWN): stat the entry to learn it
  kRegular,
  kDirectory,
  kSymlink,
  kOther,  // device, socket, fifo
};

// One name in a directory, as the directory listing reports it (no stat).
struct VolumeDirEntry {
  std::string name;
  uint64_t ino = 0;
  EntryType type = EntryType::kUnknown;
};

// What an lstat says about one entry.
struct VolumeStat {
  uint64_t dev = 0;  // st_dev: differs across btrfs subvolumes and across mounts
  uint64_t ino = 0;
  EntryType type = EntryType::kUnknown;  // never kUnknown here
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  // The inode's ctime (ns since the epoch, wall clock); 0 when unknown. With mtime it
  // says when the file last changed, where its stability wait starts.
  int64_t ctime_ns = 0;
};

struct VolumeSubvolume {
  uint64_t id = 0;
  std::string path;  // relative to the volume root, "" for the root's own subvolume
  std::string uuid;
  std::string parent_uuid;    // "" unless a snapshot
  std::string received_uuid;  // "" unless received
  bool read_only = false;
  // A generation every later change of the subvolume exceeds: each change made after
  // ListSubvolumes() returned has transid > generation. (btrfs reports the generation of
  // a transaction that may still be running; an implementation then reports one less.)
  uint64_t generation = 0;
  // The transaction that created it (0 = unknown). A snapshot is its source as of this
  // transaction: every item either of them wrote afterwards has a larger transid.
  uint64_t created_generation = 0;
};

struct InodeChange {
  uint64_t ino = 0;
  uint64_t transid = 0;  // transaction that last wrote the inode item
  uint64_t size = 0;
  int64_t mtime_ns = 0;  // as the inode item records it (what stat would say)
  int64_t ctime_ns = 0;  // the same; 0 when unknown
  bool is_dir = false;
  bool is_regular = false;
};

// An open directory. Entries and stats are relative to it, so a walk does not resolve
// paths again for every file.
class VolumeDir {
 public:
  virtual ~VolumeDir() = default;

  // The directory's own stat, taken when it was opened.
  virtual const VolumeStat& self() const = 0;

  // All entries but "." and "..".
  virtual absl::StatusOr<std::vector<VolumeDirEntry>> ReadEntries() = 0;

  // lstat of one entry.
  virtual absl::StatusOr<VolumeStat> StatEntry(absl::string_view name) = 0;

  // What StatEntry would say of the regular files among `entries` (as ReadEntries gave
  // them), by inode number, read in bulk where the filesystem can (btrfs: one tree
  // search of their inode items instead of one lstat each). An entry left out (not
  // listed as a regular file, or not found as one) is to be asked with StatEntry. The
  // answer is as of the filesystem's last commit, like ChangedInodesSince: an update not
  // in the inode item yet (a write not written back) shows the older size and times and
  // lands later with a transid above the generation ListSubvolumes() reported, so a
  // caller that would record nothing for what the item says (a file too small to track)
  // asks StatEntry instead, and so does one that must not record a size the file does
  // not have (the full scan: a file whose ctime is recent). Default: nothing (every
  // entry is statted).
  virtual absl::StatusOr<absl::flat_hash_map<uint64_t, VolumeStat>> StatRegularFiles(
      const std::vector<VolumeDirEntry>& entries) {
    return absl::flat_hash_map<uint64_t, VolumeStat>();
  }
};

class VolumeFs {
 public:
  virtual ~VolumeFs() = default;

  // The volume root as the user named it, for messages.
  virtual std::string root() const = 0;

  virtual absl::StatusOr<std::vector<VolumeSubvolume>> ListSubvolumes() = 0;

  // Opens the directory at `path`.
  virtual absl::StatusOr<std::unique_ptr<VolumeDir>> OpenDir(absl::string_view path) = 0;

  // lstat of `path`.
  virtual absl::StatusOr<VolumeStat> Stat(absl::string_view path) = 0;

  // Inodes of the subvolume rooted at `subvol_path` written after `generation`.
  virtual absl::StatusOr<std::vector<InodeChange>> ChangedInodesSince(
      absl::string_view subvol_path, uint64_t generation) = 0;

  // One path of inode `ino` relative to the root of the subvolume at `subvol_path` ("" for
  // its root directory); NotFound when the subvolume has no such inode. A hint: callers
  // stat what they find there. Unimplemented by default (callers then walk instead).
  virtual absl::StatusOr<std::string> InodePath(absl::string_view subvol_path, uint64_t ino) {
    return absl::UnimplementedError("VolumeFs::InodePath");
  }
};

// Joins a directory path and a name ("" + "a" = "a", "a" + "b" = "a/b").
inline std::string JoinVolumePath(absl::string_view dir, absl::string_view name) {
  std::string out;
  out.reserve(dir.size() + 1 + name.size());
  out.append(dir.data(), dir.size());
  if (!dir.empty() && !name.empty()) out.push_back('/');
  out.append(name.data(), name.size());
  return out;
}

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_VOLUME_FS_H_
