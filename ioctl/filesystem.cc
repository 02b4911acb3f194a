#include "ioctl/filesystem.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ioctl/errno_status.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {
namespace {

// A readable name for common statfs magics, for error messages.
std::string FilesystemName(uint64_t magic) {
  switch (magic) {
    case BTRFS_SUPER_MAGIC: return "btrfs";
    case EXT4_SUPER_MAGIC: return "ext2/3/4";
    case XFS_SUPER_MAGIC: return "xfs";
    case TMPFS_MAGIC: return "tmpfs";
    case RAMFS_MAGIC: return "ramfs";
    case PROC_SUPER_MAGIC: return "proc";
    case SYSFS_MAGIC: return "sysfs";
    case NFS_SUPER_MAGIC: return "nfs";
    case OVERLAYFS_SUPER_MAGIC: return "overlayfs";
    case SQUASHFS_MAGIC: return "squashfs";
    case F2FS_SUPER_MAGIC: return "f2fs";
    case FUSE_SUPER_MAGIC: return "fuse";
    case CGROUP2_SUPER_MAGIC: return "cgroup2";
    case DEVPTS_SUPER_MAGIC: return "devpts";
    case 0x2fc12fc1: return "zfs";
    default: return absl::StrFormat("filesystem with magic 0x%x", magic);
  }
}

absl::Status CheckMagic(const struct statfs& sfs, absl::string_view what) {
  const uint64_t magic = static_cast<uint64_t>(sfs.f_type);
  if (magic == BTRFS_SUPER_MAGIC) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(what, " is on ", FilesystemName(magic), ", not btrfs"));
}

std::string HexFsid(const uint8_t* fsid, size_t size) {
  std::string hex;
  for (size_t i = 0; i < size; ++i) absl::StrAppendFormat(&hex, "%02x", fsid[i]);
  return hex;
}

}  // namespace

absl::Status IsBtrfs(absl::string_view path) {
  const std::string p(path);
  struct statfs sfs;
  if (statfs(p.c_str(), &sfs) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, absl::StrCat("statfs ", p));
  }
  return CheckMagic(sfs, p);
}

absl::Status IsBtrfs(int fd) {
  struct statfs sfs;
  if (fstatfs(fd, &sfs) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, absl::StrCat("fstatfs ", DescribeFd(fd)));
  }
  return CheckMagic(sfs, DescribeFd(fd));
}

absl::StatusOr<BtrfsFsInfo> GetFsInfo(int fd) {
  btrfs_ioctl_fs_info_args args;
  memset(&args, 0, sizeof(args));
  args.flags = BTRFS_FS_INFO_FLAG_GENERATION;  // ignored by kernels before 5.8
  if (ioctl(fd, BTRFS_IOC_FS_INFO, &args) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, absl::StrCat("BTRFS_IOC_FS_INFO ", DescribeFd(fd)));
  }
  BtrfsFsInfo info;
  info.fsid = HexFsid(args.fsid, sizeof(args.fsid));
  info.sector_size = args.sectorsize;
  info.node_size = args.nodesize;
  info.num_devices = args.num_devices;
  if (args.flags & BTRFS_FS_INFO_FLAG_GENERATION) info.generation = args.generation;
  return info;
}

absl::StatusOr<std::string> Fsid(int fd) {
  absl::StatusOr<BtrfsFsInfo> info = GetFsInfo(fd);
  if (!info.ok()) return info.status();
  return std::move(info->fsid);
}

absl::StatusOr<std::string> Fsid(absl::string_view path) {
  // O_NONBLOCK so that a FIFO does not block the open.
  absl::StatusOr<UniqueFd> fd = OpenPath(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
  if (!fd.ok()) return fd.status();
  return Fsid(fd->get());
}

absl::Status SyncFilesystem(int fd) {
  if (syncfs(fd) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, absl::StrCat("syncfs ", DescribeFd(fd)));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> CommitTransaction(int fd) {
  __u64 transid = 0;
  if (ioctl(fd, BTRFS_IOC_START_SYNC, &transid) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, absl::StrCat("BTRFS_IOC_START_SYNC ", DescribeFd(fd)));
  }
  if (ioctl(fd, BTRFS_IOC_WAIT_SYNC, &transid) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, absl::StrCat("BTRFS_IOC_WAIT_SYNC ", DescribeFd(fd)));
  }
  return static_cast<uint64_t>(transid);
}

absl::StatusOr<bool> IsMountPoint(absl::string_view path) {
  const std::string p(path);
  struct statx stx;
  if (statx(AT_FDCWD, p.c_str(), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE, &stx) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, absl::StrCat("statx ", p));
  }
  if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) == 0) {
    return absl::UnimplementedError(
        absl::StrCat("statx ", p, ": the kernel does not report mount roots"));
  }
  return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

}  // namespace btrdupd
