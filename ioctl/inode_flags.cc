#include "ioctl/inode_flags.h"

#include <errno.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {

absl::StatusOr<InodeFlags> GetInodeFlags(int fd) {
  int flags = 0;  // the kernel reads and writes an int despite the ioctl's long type
  if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
    return btrdupd::ErrnoToStatus(errno, absl::StrCat("FS_IOC_GETFLAGS ", DescribeFd(fd)));
  }
  InodeFlags out;
  out.nocow = (flags & FS_NOCOW_FL) != 0;
  out.immutable = (flags & FS_IMMUTABLE_FL) != 0;
  out.append_only = (flags & FS_APPEND_FL) != 0;
  out.compress = (flags & FS_COMPR_FL) != 0;
  return out;
}

absl::Status SetNoCow(int fd) {
  int flags = 0;
  if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
    return btrdupd::ErrnoToStatus(errno, absl::StrCat("FS_IOC_GETFLAGS ", DescribeFd(fd)));
  }
  if ((flags & FS_NOCOW_FL) != 0) return absl::OkStatus();
  flags |= FS_NOCOW_FL;
  if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) {
    return btrdupd::ErrnoToStatus(errno, absl::StrCat("FS_IOC_SETFLAGS +C ", DescribeFd(fd)));
  }
  return absl::OkStatus();
}

}  // namespace btrdupd
