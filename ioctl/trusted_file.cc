#include "ioctl/trusted_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"
#include "ioctl/open_beneath.h"

namespace btrdupd {
namespace {

const char* TypeName(mode_t mode) {
  if (S_ISLNK(mode)) return "a symlink";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device node";
  if (S_ISDIR(mode)) return "a directory";
  return "not a regular file";
}

// `fd` (O_PATH of `path`) is of type `want` (S_IFREG / S_IFDIR), owned by root or the
// running user, not writable by group or others.
absl::Status CheckTrusted(int fd, const std::string& path, mode_t want) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoToStatus(errno, absl::StrCat("fstat ", path));
  const char* kind = want == S_IFDIR ? "a directory" : "a regular file";
  if ((st.st_mode & S_IFMT) != want) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " is ", TypeName(st.st_mode), ", not ", kind,
        ": btrdupd never follows or opens it (replace it with ", kind, " owned by root)"));
  }
  if (st.st_uid != 0 && st.st_uid != geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " is owned by uid ", st.st_uid,
        ", not by root: another user could steer btrdupd with it (fix: chown root:root '",
        path, "')"));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " is writable by group or others: another user could steer btrdupd with it "
        "(fix: chmod go-w '", path, "')"));
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> OpenNoFollow(const std::string& path) {
  return OpenPath(path, O_PATH | O_NOFOLLOW);
}

}  // namespace

absl::StatusOr<std::string> ReadTrustedFile(const std::string& path, size_t max_bytes) {
  absl::StatusOr<UniqueFd> path_fd = OpenNoFollow(path);
  if (!path_fd.ok()) return path_fd.status();
  absl::Status trusted = CheckTrusted(path_fd->get(), path, S_IFREG);
  if (!trusted.ok()) return trusted;
  absl::StatusOr<UniqueFd> fd = ReopenFd(path_fd->get(), O_RDONLY | O_NONBLOCK);
  if (!fd.ok()) return fd.status();
  std::string text;
  char buffer[4096];
  while (true) {
    const ssize_t n = TEMP_FAILURE_RETRY(::read(fd->get(), buffer, sizeof(buffer)));
    if (n < 0) return ErrnoToStatus(errno, absl::StrCat("read ", path));
    if (n == 0) return text;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > max_bytes) {
      return absl::OutOfRangeError(
          absl::StrCat(path, " holds more than ", max_bytes, " bytes"));
    }
  }
}

absl::StatusOr<UniqueFd> OpenTrustedDirectory(const std::string& path) {
  absl::StatusOr<UniqueFd> fd = OpenNoFollow(path);
  if (!fd.ok()) return fd.status();
  absl::Status trusted = CheckTrusted(fd->get(), path, S_IFDIR);
  if (!trusted.ok()) return trusted;
  return fd;
}

}  // namespace btrdupd
