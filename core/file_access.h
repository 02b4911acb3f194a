// FileAccess: how core/ reaches file contents, extents and subvolume flags.
//
// The dedupe engine (core/dedupe_engine.h) never makes a syscall itself: it reads files
// to hash them, asks which files already share extents, and reads (and, for an older
// kernel that refuses to dedupe into a read-only snapshot, flips) subvolume flags only
// through this interface (the LevelDB `Env` idea). The real
// implementation is daemon/real_file_access.h (ioctl/ + read() + posix_fadvise); tests
// of the engine's logic use tests/testing/fake_file_access.h.
//
// Files are named by identity, not by path (FileRef): the subvolume the index found
// them in, their path relative to the volume root, and their inode. A path is only a
// hint: the real implementation resolves it beneath the subvolume's root, following no
// symlink in any component and crossing no mount (ioctl/open_beneath.h), checks that
// what it found is a regular file of that subvolume with that inode, and only then
// opens it for I/O (a FIFO or device in a file's place is never opened). Subvolumes
// are named the same way (SubvolumeRef), checked by their id before a flag is read or
// changed.
//
// Errors carry the path and the errno text, with codes callers branch on:
//   NotFound         the file (or a directory on its path) vanished
//   Aborted          the path no longer leads to the file the index recorded: another
//                    inode, another subvolume, not a regular file, or a component that
//                    is a symlink or a mount now. The tree changed since the scan: the
//                    file goes back to the scanner; not an error (IsTreeChanged()).
//   InvalidArgument  a malformed path from the index ("..", empty components): refused
//   PermissionDenied, FailedPrecondition, ...
//
// Thread-safety: implementations need not be thread-safe (one processing thread).

#ifndef BTRDUPD_CORE_FILE_ACCESS_H_
#define BTRDUPD_CORE_FILE_ACCESS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/freed_space.h"

namespace btrdupd {

class HashStream;  // core/hash_stream.h

// Which file the index means.
struct FileRef {
  uint64_t subvol_id = 0;    // the btrfs subvolume the file belongs to
  std::string subvol_path;   // that subvolume's root, relative to the volume root ("" = root)
  std::string path;          // the file, relative to the volume root (index form), below
                             // subvol_path
  uint64_t ino = 0;          // its inode number in that subvolume
  std::string display;       // volume root + "/" + path: for messages only, never opened
};

// Which subvolume (root) is meant; checked by id.
struct SubvolumeRef {
  uint64_t id = 0;
  std::string path;     // relative to the volume root ("" = the volume root)
  std::string display;  // absolute, for messages only
};

// The file is not where (or what) the index says: the tree changed since the scan.
inline bool IsTreeChanged(const absl::Status& status) { return absl::IsAborted(status); }

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
  uint32_t owner = 0;        // st_uid: with dedupe_across_owners = false only files of
                             // one owner share extents
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
  // Where the data is (SEEK_DATA / SEEK_HOLE): skips the hole at the current offset, if
  // any, so the next Read() continues after it, and says how many bytes of data follow
  // before the next hole. Holes are never read, so a sparse file costs only its data.
  struct DataSpan {
    uint64_t hole = 0;                 // bytes of hole skipped (the rest of the file when
                                       // only holes remain)
    uint64_t data = UINT64_MAX;        // bytes of data from the new offset; MAX: unknown
  };
  // The default knows of no holes.
  virtual absl::StatusOr<DataSpan> NextData() { return DataSpan(); }
};

class FileAccess {
 public:
  virtual ~FileAccess() = default;

  // Opens `file` read-only for hashing. NotFound if it is gone.
  virtual absl::StatusOr<std::unique_ptr<SequentialFile>> OpenForRead(const FileRef& file) = 0;

  // A hint that the first `bytes` of `file` will soon be read through OpenForRead. The
  // real implementation starts reading them in the background (POSIX_FADV_WILLNEED), so
  // the disk works while the engine hashes another file, and drops hinted pages that are
  // not read soon (at most a bounded amount stays cached). Errors are ignored: it is only
  // a hint. The default does nothing.
  virtual void Prefetch(const FileRef& file, uint64_t bytes) {
    (void)file;
    (void)bytes;
  }

  // A file hinted by Prefetch() whose first bytes a read-ahead thread already read and
  // hashed (one-shot --jobs): the HashStream as that thread left it, opened and checked
  // when the hint was made (the caller still checks it is the file it expects: the
  // stream's opened() stat). nullptr when there is none; the caller then opens the file
  // with OpenForRead(). The default has none.
  virtual std::shared_ptr<HashStream> TakeHashStream(const FileRef& file) {
    (void)file;
    return nullptr;
  }

  // stat of `file` (its identity checked as for every call).
  virtual absl::StatusOr<FileStat> Stat(const FileRef& file) = 0;

  virtual absl::StatusOr<FileAttributes> GetAttributes(const FileRef& file) = 0;

  // True if every byte of `a` and `b` lies on the same physical extents at the same
  // offsets (FIEMAP), i.e. they are already deduped with each other. False when either
  // has inline or not-yet-written data that cannot be compared (the implementation
  // flushes delalloc data first).
  virtual absl::StatusOr<bool> SharesAllExtents(const FileRef& a, const FileRef& b) = 0;

  // True if any extent of `file` is shared with another file or snapshot (FIEMAP's
  // SHARED flag).
  virtual absl::StatusOr<bool> HasSharedExtents(const FileRef& file) = 0;

  // The on-disk extents `file` holds (each once, with its whole allocated size), for
  // counting what a dedupe of it frees (core/freed_space.h). A shared extent's
  // referrers are left unknown unless `resolve_shared` (a backref walk per shared
  // extent; the real implementation may commit the filesystem first so the walk sees
  // recent writes). The default answers Unimplemented: nothing is counted as freed.
  virtual absl::StatusOr<std::vector<HeldExtent>> HeldExtents(const FileRef& file,
                                                              bool resolve_shared) {
    (void)file;
    (void)resolve_shared;
    return absl::UnimplementedError("HeldExtents");
  }

  // The read-only / received state of `subvol`, and whether the mount it lies on is
  // read-only.
  virtual absl::StatusOr<SubvolumeFlags> GetSubvolumeFlags(const SubvolumeRef& subvol) = 0;

  // Sets or clears the read-only flag of `subvol` (through a descriptor whose
  // subvolume id was checked).
  virtual absl::Status SetSubvolumeReadOnly(const SubvolumeRef& subvol, bool read_only) = 0;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_FILE_ACCESS_H_
