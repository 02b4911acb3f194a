// Directory listing for the scanner: getdents64 and fstatat, wrapped once.
//
// A directory is read in one go into a vector of (name, inode, d_type) with a large
// getdents64 buffer (few syscalls for directories of thousands of entries); "." and ".."
// are left out. Stat information comes separately from StatAt (fstatat with
// AT_SYMLINK_NOFOLLOW), so a walker only pays for the entries it needs. Directories are
// opened with O_DIRECTORY|O_NOFOLLOW: a symlink is never followed into another tree.
//
// Every error is an absl::Status carrying the errno's meaning (ioctl/errno_status.h) and
// the path (via the descriptor) in its message. Functions borrow descriptors; none is
// kept beyond a call. Thread-compatible.

#ifndef BTRDUPD_IOCTL_DIRECTORY_H_
#define BTRDUPD_IOCTL_DIRECTORY_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {

struct DirectoryEntry {
  std::string name;
  uint64_t ino = 0;
  unsigned char d_type = 0;  // DT_REG, DT_DIR, DT_LNK, ... or DT_UNKNOWN (then stat it)
};

// The stat fields btrdupd uses.
struct FileStatus {
  uint64_t dev = 0;
  uint64_t ino = 0;
  mode_t mode = 0;  // file type and permission bits (S_ISREG(mode), ...)
  uint64_t nlink = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;  // seconds * 1e9 + nanoseconds
  int64_t ctime_ns = 0;  // the inode's last change (data or metadata), same unit
};

// Reads every entry of the open directory `dir_fd` from its current position (a fresh
// descriptor reads them all). Order is the filesystem's.
absl::StatusOr<std::vector<DirectoryEntry>> ReadDirectory(int dir_fd);

// fstatat(dir_fd, name, AT_SYMLINK_NOFOLLOW): a symlink is reported as itself.
absl::StatusOr<FileStatus> StatAt(int dir_fd, absl::string_view name);

// fstat of an open descriptor.
absl::StatusOr<FileStatus> StatFd(int fd);

// Opens `name` (relative to `dir_fd`, or absolute with AT_FDCWD) as a directory, read
// only, with O_DIRECTORY|O_NOFOLLOW, and O_NOATIME when permitted (so that reading it
// does not rewrite its inode). A symlink or a non-directory fails (NotFound or
// InvalidArgument per errno_status.h: ELOOP, ENOTDIR).
absl::StatusOr<UniqueFd> OpenDirectoryAt(int dir_fd, absl::string_view name);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_DIRECTORY_H_
