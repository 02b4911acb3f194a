// RealFileAccess: FileAccess (core/file_access.h) on the running kernel.
//
// Reads with read(2) after posix_fadvise(SEQUENTIAL), and drops every range it has read
// from the page cache (POSIX_FADV_DONTNEED) so hashing a large volume does not evict the
// user's cache; opens with O_NOATIME when allowed (root). Extents come from FIEMAP
// (ioctl/fiemap.h, synced), inode flags from FS_IOC_GETFLAGS (ioctl/inode_flags.h),
// subvolume flags from libbtrfsutil (ioctl/subvolumes.h). Active swap files are those
// listed in /proc/swaps (compared by device and inode; re-read at most once a second).
//
// Thread-compatible: one processing thread.

#ifndef BTRDUPD_DAEMON_REAL_FILE_ACCESS_H_
#define BTRDUPD_DAEMON_REAL_FILE_ACCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/file_access.h"

namespace btrdupd {

class RealFileAccess : public FileAccess {
 public:
  RealFileAccess() = default;

  absl::StatusOr<std::unique_ptr<SequentialFile>> OpenForRead(const std::string& path) override;
  absl::StatusOr<FileStat> Stat(const std::string& path) override;
  absl::StatusOr<FileAttributes> GetAttributes(const std::string& path) override;
  absl::StatusOr<bool> SharesAllExtents(const std::string& a, const std::string& b) override;
  absl::StatusOr<bool> HasSharedExtents(const std::string& path) override;
  absl::StatusOr<SubvolumeFlags> GetSubvolumeFlags(const std::string& subvol_path) override;
  absl::Status SetSubvolumeReadOnly(const std::string& subvol_path, bool read_only) override;

 private:
  bool IsActiveSwap(dev_t dev, ino_t ino);

  std::vector<std::pair<dev_t, ino_t>> swaps_;
  int64_t swaps_read_at_ns_ = -1;  // CLOCK_MONOTONIC
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_REAL_FILE_ACCESS_H_
