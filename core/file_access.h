// FileAccess: how core/ reaches file contents, extents and subvolume flags.
//
// The dedupe engine (core/dedupe_engine.h) never makes a syscall itself: it reads files
// to hash them, asks which files already share extents, and reads (and, for an older
// kernel that refuses to dedupe into a read-only snapshot, flips) subvolume flags only
// through this interface (the LevelDB `Env` idea). The real
// implementation is daemon/real_file_access.h (ioctl/ + read() + posix_fadvise); tests
// of the engine's logic use tests/testing/fake_file_access.h.
//
// Paths are absolute. Errors carry the path and the errno text, with codes callers
// branch on: NotFound (the file vanished), PermissionDenied, FailedPrecondition, ...
//
// Thread-safety: implementations need not be thread-safe (one processing thread).

#ifndef BTRDUPD_CORE_FILE_ACCESS_H_
#define BTRDUPD_CORE_FILE_ACCESS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace btrdupd {

// What fstat says of an open file (enough to notice that it changed while read).
struct FileStat {
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

inline bool operator==(const FileStat& a, const FileStat& b) {
  return a.ino == b.ino && a.size == b.size && a.mtime_ns == b.mtime_ns;
}
inline bool operator!=(const FileStat& a, const FileStat& b) { return !(a == b); }

// Inode attributes that decide whether a file may take part in a dedupe.
struct FileAttributes {
  bool nocow = false;        // chattr +C: no data checksums; only shares with other NOCOW files
  bool immutable = false;    // chattr +i: cannot be a destination
  bool append_only = false;  // chattr +a: cannot be a destination
  bool swapfile = false;     // an active swap file: neither source nor destination
};

// Flags of the subvolume a path belongs to.
struct SubvolumeFlags {
  bool read_only = false;
  bool received = false;  // received_uuid is set (made by `btrfs receive`)
  // The mount the subvolume is reached through is read-only: nothing on it can be
  // deduped, and clearing the subvolume's read-only flag would not change that.
  bool on_read_only_mount = false;
};

// A file opened for one sequential read from its start.
//
// Contract: Read() returns the next bytes (0 at end of file). The real implementation
// announces sequential access and drops what it read from the page cache
// (POSIX_FADV_DONTNEED), so hashing a large tree does not evict the user's cache.
class SequentialFile {
 public:
  virtual ~SequentialFile() = default;
  // fstat of the open file.
  virtual absl::StatusOr<FileStat> Stat() = 0;
  // Reads up to `n` bytes into `buf`; returns how many were read, 0 at end of file.
  virtual absl::StatusOr<size_t> Read(char* buf, size_t n) = 0;
};

class FileAccess {
 public:
  virtual ~FileAccess() = default;

  // Opens `path` read-only for hashing. NotFound if it is gone.
  virtual absl::StatusOr<std::unique_ptr<SequentialFile>> OpenForRead(
      const std::string& path) = 0;

  // A hint that the first `bytes` of `path` will soon be read through OpenForRead. The
  // real implementation starts reading them in the background (POSIX_FADV_WILLNEED), so
  // the disk works while the engine hashes another file, and drops hinted pages that are
  // not read soon (at most a bounded amount stays cached). Errors are ignored: it is only
  // a hint. The default does nothing.
  virtual void Prefetch(const std::string& path, uint64_t bytes) {
    (void)path;
    (void)bytes;
  }

  // stat of `path` (without following a final symlink).
  virtual absl::StatusOr<FileStat> Stat(const std::string& path) = 0;

  virtual absl::StatusOr<FileAttributes> GetAttributes(const std::string& path) = 0;

  // True if every byte of `a` and `b` lies on the same physical extents at the same
  // offsets (FIEMAP), i.e. they are already deduped with each other. False when either
  // has inline or not-yet-written data that cannot be compared (the implementation
  // flushes delalloc data first).
  virtual absl::StatusOr<bool> SharesAllExtents(const std::string& a,
                                                const std::string& b) = 0;

  // True if any extent of `path` is shared with another file or snapshot (FIEMAP's
  // SHARED flag).
  virtual absl::StatusOr<bool> HasSharedExtents(const std::string& path) = 0;

  // The read-only / received state of the subvolume whose root is `subvol_path`, and
  // whether the mount `subvol_path` lies on is read-only.
  virtual absl::StatusOr<SubvolumeFlags> GetSubvolumeFlags(const std::string& subvol_path) = 0;

  // Sets or clears the read-only flag of the subvolume whose root is `subvol_path`.
  virtual absl::Status SetSubvolumeReadOnly(const std::string& subvol_path,
                                            bool read_only) = 0;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_FILE_ACCESS_H_
