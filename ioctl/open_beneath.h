// Opening a path below a directory, never through a link, never onto another mount.
//
// btrdupd runs as root over trees users change at will: a path read from the index or
// from a listing is a hint, and any of its components may have become a symlink (to
// /etc, to /dev) or a mount point since. OpenBeneath resolves a relative path from a
// directory descriptor with the guarantees of openat2(2)'s
//   RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV:
// the result is the directory itself or lies below it; no component (the last one
// included) is a symlink; no mount point is crossed. On a kernel without openat2
// (before Linux 5.6) the same is done component by component: each directory with
// openat(O_PATH | O_NOFOLLOW | O_DIRECTORY), the last one with O_NOFOLLOW, checking that
// every step stays on the starting directory's mount (its mount id, else its
// filesystem).
//
// Paths: '/'-separated, relative, no empty, "." or ".." component, no NUL
// (InvalidArgument otherwise, before any system call). "" names `dir_fd` itself.
//
// Errors:
//   NotFound         a component does not exist (or is not a directory where one must be)
//   Aborted          the path leads through a symlink, onto another mount, or out of
//                    `dir_fd` (the tree is not what the caller expected: it changed)
//   InvalidArgument  a malformed path (see above)
//   others           from errno (ioctl/errno_status.h), e.g. PermissionDenied
//
// Use O_PATH (with `flags`) to look at a file before opening it for I/O, then ReopenFd():
// a FIFO or device is then never opened, not even for a moment.
//
// Thread-safe (the kernel probe is done once).

#ifndef BTRDUPD_IOCTL_OPEN_BENEATH_H_
#define BTRDUPD_IOCTL_OPEN_BENEATH_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {

enum class ResolveMethod {
  kAuto,     // openat2 where the kernel has it, else the walk
  kOpenat2,  // openat2 only (Unimplemented on a kernel without it)
  kWalk,     // the component-by-component walk (what kernels < 5.6 get)
};

// Opens `relative` beneath `dir_fd` with open(2) `flags` (O_CLOEXEC and O_NOFOLLOW are
// added; O_CREAT and O_TMPFILE are refused). See the file comment for the guarantees.
absl::StatusOr<UniqueFd> OpenBeneath(int dir_fd, absl::string_view relative, int flags,
                                     ResolveMethod method = ResolveMethod::kAuto);

// Opens the file an O_PATH descriptor refers to again, with `flags` (e.g. O_RDONLY),
// without resolving any path: the result is the same inode even if the names that led
// to it changed since (through /proc/self/fd, which must be mounted).
absl::StatusOr<UniqueFd> ReopenFd(int path_fd, int flags);

// Whether the running kernel has openat2 (probed once).
bool Openat2Supported();

// InvalidArgument unless `relative` is "" or non-empty components separated by single
// '/', none "." or "..", no NUL. For paths read back from a database.
absl::Status CheckRelativePath(absl::string_view relative);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_OPEN_BENEATH_H_
