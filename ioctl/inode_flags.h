// Inode attribute flags (FS_IOC_GETFLAGS, what `lsattr` shows) that decide whether a
// file may take part in a dedupe: NOCOW (+C), immutable (+i), append-only (+a).
//
// Thread-safe: no shared state.

#ifndef BTRDUPD_IOCTL_INODE_FLAGS_H_
#define BTRDUPD_IOCTL_INODE_FLAGS_H_

#include "absl/status/statusor.h"

namespace btrdupd {

struct InodeFlags {
  bool nocow = false;        // FS_NOCOW_FL: no data checksums (chattr +C)
  bool immutable = false;    // FS_IMMUTABLE_FL (chattr +i)
  bool append_only = false;  // FS_APPEND_FL (chattr +a)
  bool compress = false;     // FS_COMPR_FL (chattr +c)
};

// FS_IOC_GETFLAGS on an open file. The error names the file (DescribeFd).
absl::StatusOr<InodeFlags> GetInodeFlags(int fd);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_INODE_FLAGS_H_
