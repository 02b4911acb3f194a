// UniqueFd: sole owner of a file descriptor, closed when the owner goes away.
//
// Functions elsewhere in ioctl/ take descriptors they only borrow as plain
// `int` parameters; nothing stores a raw descriptor beyond a call.
//
// Thread-compatible.

#ifndef BTRDUPD_IOCTL_UNIQUE_FD_H_
#define BTRDUPD_IOCTL_UNIQUE_FD_H_

#include <fcntl.h>
#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace btrdupd {

class UniqueFd {
 public:
  UniqueFd() = default;
  // Takes ownership of `fd` (which may be -1).
  explicit UniqueFd(int fd) : fd_(fd) {}

  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  ~UniqueFd() { reset(); }

  // The descriptor, or -1. Ownership stays here.
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

  // Gives up ownership and returns the descriptor.
  int release();

  // Closes the current descriptor (errors from close are ignored) and takes
  // ownership of `fd`.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// open(2) with O_CLOEXEC always added; retries on EINTR. `mode` is used
// only with O_CREAT/O_TMPFILE. The error names the path.
absl::StatusOr<UniqueFd> OpenPath(absl::string_view path, int flags, mode_t mode = 0);

// openat(2) relative to the directory `dirfd` (or AT_FDCWD), O_CLOEXEC added.
absl::StatusOr<UniqueFd> OpenAt(int dirfd, absl::string_view name, int flags,
                                mode_t mode = 0);

// Best-effort path of an open descriptor for messages ("/mnt/a (fd 7)"),
// from /proc/self/fd; "fd 7" when it cannot be read. Leaves errno unchanged.
std::string DescribeFd(int fd);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_UNIQUE_FD_H_
