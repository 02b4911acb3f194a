// Facts about the filesystem under a path: is it btrfs, which one is it
// (fsid), is a path a mount point; and syncfs.
//
// Thread-safe: no shared state.

#ifndef BTRDUPD_IOCTL_FILESYSTEM_H_
#define BTRDUPD_IOCTL_FILESYSTEM_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace btrdupd {

// OK if `path` is on a btrfs filesystem (statfs magic). Otherwise
// FailedPrecondition naming the path and the filesystem it is on (e.g.
// "tmpfs"), or the statfs error (NotFound, PermissionDenied, ...).
absl::Status IsBtrfs(absl::string_view path);
absl::Status IsBtrfs(int fd);

// BTRFS_IOC_FS_INFO. Works for any descriptor on the filesystem.
struct BtrfsFsInfo {
  std::string fsid;          // 32 lower-case hex digits, no dashes
  uint32_t sector_size = 0;  // block size: dedupe offsets are multiples of it
  uint32_t node_size = 0;
  uint64_t num_devices = 0;
  uint64_t generation = 0;   // current transaction id (the running one, if any)
};
absl::StatusOr<BtrfsFsInfo> GetFsInfo(int fd);

// The fsid alone: equal fsids mean the same btrfs filesystem even though
// every subvolume has its own st_dev.
absl::StatusOr<std::string> Fsid(int fd);
absl::StatusOr<std::string> Fsid(absl::string_view path);

// syncfs(2): writes out and commits everything of the filesystem holding fd.
absl::Status SyncFilesystem(int fd);

// Commits the running transaction of the filesystem holding fd and waits for it
// (BTRFS_IOC_START_SYNC + WAIT_SYNC): every metadata change made so far, delayed inode
// updates included, is then in the trees a TREE_SEARCH reads. Unlike syncfs it does not
// write out other files' dirty data. Returns the committed transid.
absl::StatusOr<uint64_t> CommitTransaction(int fd);

// Whether `path` is the root of a mount (statx STATX_ATTR_MOUNT_ROOT; a
// subvolume directory that is not mounted separately is not). Symlinks are
// not followed. Unimplemented on kernels that cannot tell (before 5.8).
absl::StatusOr<bool> IsMountPoint(absl::string_view path);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_FILESYSTEM_H_
