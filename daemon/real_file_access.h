// RealFileAccess: FileAccess (core/file_access.h) on the running kernel.
//
// Every file and subvolume is opened through a FileOpener (daemon/file_opener.h):
// beneath the volume root, through no link, its identity checked before any I/O.
//
// Reads with read(2) after posix_fadvise(SEQUENTIAL), and drops every range it has read
// from the page cache (POSIX_FADV_DONTNEED) so hashing a large volume does not evict the
// user's cache; opens with O_NOATIME when allowed (root).
//
// With a `keep_cached_bytes` budget (constructor), the pages of the files hashed last
// stay cached until they add up to more than the budget (oldest dropped first) or the
// RealFileAccess is destroyed (everything left is dropped). The engine dedupes a size
// group right after hashing its members, and the kernel byte-compares source and
// destination before sharing them: with the group still cached that compare reads
// nothing from disk, so each duplicate byte is read once instead of twice. A file
// larger than the budget is dropped as it is read, as without a budget.
//
// Prefetch() opens the file and asks for its first bytes with POSIX_FADV_WILLNEED, so
// the disk reads them while the engine hashes the files before it; with read-ahead
// threads (one-shot --jobs) those threads read them instead. A hinted file that
// is then read counts as read (its hinted bytes are dropped or kept like the rest); hints
// not read while more than 64 MiB or 256 files of later hints pile up are dropped from
// the cache, oldest first, and so is everything hinted when the object is destroyed.
// Extents come from FIEMAP
// (ioctl/fiemap.h, synced), inode flags from FS_IOC_GETFLAGS (ioctl/inode_flags.h),
// subvolume flags from libbtrfsutil (ioctl/subvolumes.h), a read-only mount from
// statvfs. Active swap files are those listed in /proc/swaps (compared by device and
// inode; re-read at most once a second).
//
// Thread-compatible: one processing thread (read-ahead threads are internal).

#ifndef BTRDUPD_DAEMON_REAL_FILE_ACCESS_H_
#define BTRDUPD_DAEMON_REAL_FILE_ACCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/file_access.h"
#include "daemon/file_opener.h"
#include "daemon/read_ahead_pool.h"

namespace btrdupd {

class RealSequentialFile;  // real_file_access.cc

class RealFileAccess : public FileAccess {
 public:
  // `opener` (borrowed, outlives this) opens every file. Keeps up to `keep_cached_bytes`
  // of recently hashed files cached (see above). With `read_ahead_threads` > 0,
  // Prefetch() hands the opened file to that many threads that read the hinted bytes
  // (daemon/read_ahead_pool.h) instead of asking the kernel on the caller's thread.
  // With read-ahead threads and `hash_prefix_bytes` > 0, the threads also hash what
  // they read (a HashStream with that prefix length: TakeHashStream()).
  explicit RealFileAccess(FileOpener* opener, uint64_t keep_cached_bytes = 0,
                          int read_ahead_threads = 0, uint64_t hash_prefix_bytes = 0);
  ~RealFileAccess() override;

  RealFileAccess(const RealFileAccess&) = delete;
  RealFileAccess& operator=(const RealFileAccess&) = delete;

  absl::StatusOr<std::unique_ptr<SequentialFile>> OpenForRead(const FileRef& file) override;
  void Prefetch(const FileRef& file, uint64_t bytes) override;
  std::shared_ptr<HashStream> TakeHashStream(const FileRef& file) override;
  absl::StatusOr<FileStat> Stat(const FileRef& file) override;
  absl::StatusOr<FileAttributes> GetAttributes(const FileRef& file) override;
  absl::StatusOr<bool> SharesAllExtents(const FileRef& a, const FileRef& b) override;
  absl::StatusOr<bool> HasSharedExtents(const FileRef& file) override;
  // FIEMAP, the inode's extent items and, for shared extents, LOGICAL_INO_V2
  // (ioctl/extent_refs.h); commits the filesystem once if a walk needs it.
  absl::StatusOr<std::vector<HeldExtent>> HeldExtents(const FileRef& file,
                                                      bool resolve_shared) override;
  absl::StatusOr<SubvolumeFlags> GetSubvolumeFlags(const SubvolumeRef& subvol) override;
  absl::Status SetSubvolumeReadOnly(const SubvolumeRef& subvol, bool read_only) override;

 private:
  friend class RealSequentialFile;

  bool IsActiveSwap(dev_t dev, ino_t ino);
  // A hashed file whose first `bytes` are cached; drops the oldest over the budget.
  void KeepCached(FileRef file, uint64_t bytes);

  // Bytes of `file` hinted by Prefetch() and not read since (0 if none); forgets the hint.
  uint64_t TakeHint(const FileRef& file);

  // Drops a file's pages from the page cache (opened again, verified).
  void DropCachedFile(const FileRef& file);

  struct Hinted {
    FileRef file;
    uint64_t bytes = 0;
    std::shared_ptr<ReadAheadPool::Ticket> ticket;  // with read-ahead threads
    // The file of the ticket's HashStream, when the thread hashes too (owned by the
    // stream; valid while the hint is listed).
    RealSequentialFile* stream_file = nullptr;
  };
  // Forgets the oldest hint and drops what it cached.
  void DropOldestHint();

  FileOpener* const opener_;
  const uint64_t keep_cached_bytes_ = 0;
  const uint64_t hash_prefix_bytes_ = 0;
  std::unique_ptr<ReadAheadPool> pool_;  // read-ahead threads, if any
  std::deque<Hinted> hinted_;            // oldest first, not read yet
  uint64_t hinted_bytes_ = 0;
  std::deque<std::pair<FileRef, uint64_t>> cached_;  // oldest first
  uint64_t cached_bytes_ = 0;

  std::vector<std::pair<dev_t, ino_t>> swaps_;
  int64_t swaps_read_at_ns_ = -1;  // CLOCK_MONOTONIC
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_REAL_FILE_ACCESS_H_
