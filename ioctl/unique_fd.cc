#include "ioctl/unique_fd.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>  // TEMP_FAILURE_RETRY

#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"

namespace btrdupd {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

int UniqueFd::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void UniqueFd::reset(int fd) {
  // close() is not retried on EINTR: on Linux the descriptor is gone anyway.
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

absl::StatusOr<UniqueFd> OpenPath(absl::string_view path, int flags, mode_t mode) {
  return OpenAt(AT_FDCWD, path, flags, mode);
}

absl::StatusOr<UniqueFd> OpenAt(int dirfd, absl::string_view name, int flags, mode_t mode) {
  const std::string name_str(name);
  int fd = TEMP_FAILURE_RETRY(openat(dirfd, name_str.c_str(), flags | O_CLOEXEC, mode));
  if (fd < 0) {
    const int err = errno;
    std::string where = name_str;
    if (dirfd != AT_FDCWD && (name_str.empty() || name_str[0] != '/')) {
      where = absl::StrCat(name_str, " in ", DescribeFd(dirfd));
    }
    return ErrnoToStatus(err, absl::StrCat("open ", where));
  }
  return UniqueFd(fd);
}

std::string DescribeFd(int fd) {
  const int saved_errno = errno;
  char target[PATH_MAX];
  const std::string link = absl::StrCat("/proc/self/fd/", fd);
  ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
  errno = saved_errno;
  if (n <= 0) return absl::StrCat("fd ", fd);
  return absl::StrCat(absl::string_view(target, static_cast<size_t>(n)), " (fd ", fd, ")");
}

}  // namespace btrdupd
