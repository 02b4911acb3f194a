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

// Sets FS_NOCOW_FL on an open, empty file or a directory (files created in it inherit
// it): their data is then overwritten in place. For btrdupd's own database, so its
// writes do not fragment it and do not churn the extent items the next change check
// reads. Takes effect only on files with no data yet.
absl::Status SetNoCow(int fd);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_INODE_FLAGS_H_
