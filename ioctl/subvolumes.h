// Subvolumes and snapshots of a mounted btrfs filesystem, via libbtrfsutil.
//
// Errors carry libbtrfsutil's description and the errno text. Codes: not
// btrfs or not a subvolume -> FailedPrecondition; no such subvolume ->
// NotFound; otherwise from errno (ioctl/errno_status.h), e.g.
// PermissionDenied without CAP_SYS_ADMIN.
//
// Thread-safe: no shared state.

#ifndef BTRDUPD_IOCTL_SUBVOLUMES_H_
#define BTRDUPD_IOCTL_SUBVOLUMES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace btrdupd {

// The top-level subvolume's id (BTRFS_FS_TREE_OBJECTID).
inline constexpr uint64_t kTopLevelSubvolumeId = 5;

struct SubvolumeInfo {
  uint64_t id = 0;
  uint64_t parent_id = 0;  // the subvolume containing it; 0 for the top level
  // Relative to the path given to ListSubvolumes ("" for that subvolume
  // itself); always "" from GetSubvolumeInfo.
  std::string path;
  // Canonical lower-case text, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
  // parent_uuid and received_uuid are "" when nil (not a snapshot, not received).
  std::string uuid;
  std::string parent_uuid;    // the subvolume this one is a snapshot of
  std::string received_uuid;  // set by `btrfs receive`: never make these writable
  uint64_t generation = 0;    // transid of the subvolume's root
  // Transaction that created it (otransid): a snapshot holds its source as of this
  // transaction; items either of them wrote later carry a larger transid.
  uint64_t created_generation = 0;
  bool read_only = false;
};

// The subvolume at `mount_path` and every subvolume below it, sorted by path
// (so "" comes first and parents come before their children). REQUIRES: mount_path is the root of a subvolume (a mount point
// or a subvolume directory); otherwise FailedPrecondition.
absl::StatusOr<std::vector<SubvolumeInfo>> ListSubvolumes(absl::string_view mount_path);

// The subvolume containing `path` (any path inside it; below a subvolume's
// root this needs CAP_SYS_ADMIN).
absl::StatusOr<SubvolumeInfo> GetSubvolumeInfo(absl::string_view path);

// Whether `path` is the root of a subvolume. FailedPrecondition if `path` is
// not on btrfs.
absl::StatusOr<bool> IsSubvolume(absl::string_view path);

// The read-only flag of the subvolume at `path`.
absl::StatusOr<bool> GetReadOnly(absl::string_view path);

// Sets or clears the read-only flag. Needs CAP_SYS_ADMIN. Making a received
// subvolume writable breaks incremental send/receive based on it; callers
// check received_uuid first.
absl::Status SetReadOnly(absl::string_view path, bool read_only);

// --- Through an open descriptor (a directory opened O_RDONLY, not O_PATH) ---

// The id of the subvolume containing the open file or directory `fd`.
absl::StatusOr<uint64_t> SubvolumeIdOfFd(int fd);

// The subvolume containing `fd` (any file or directory in it).
absl::StatusOr<SubvolumeInfo> GetSubvolumeInfoFd(int fd);

// Sets or clears the read-only flag of the subvolume whose root `fd` is. Needs
// CAP_SYS_ADMIN; see SetReadOnly.
absl::Status SetReadOnlyFd(int fd, bool read_only);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_SUBVOLUMES_H_
