#include "ioctl/open_beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace {

constexpr uint64_t kResolveFlags =
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

absl::Status Escaped(absl::string_view relative, absl::string_view why) {
  return absl::AbortedError(absl::StrCat("open ", relative, ": ", why,
                                         " (the tree changed; not followed)"));
}

// The error for an openat2/openat failure on `relative`.
absl::Status OpenError(int err, absl::string_view relative, int dir_fd) {
  if (err == ELOOP) return Escaped(relative, "a component is a symlink");
  if (err == EXDEV) return Escaped(relative, "the path leaves the directory or crosses a mount");
  return ErrnoToStatus(err, absl::StrCat("open ", relative, " in ", DescribeFd(dir_fd)));
}

long RawOpenat2(int dir_fd, const char* path, int flags) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(flags);
  how.resolve = kResolveFlags;
  return syscall(SYS_openat2, dir_fd, path, &how, sizeof(how));
}

absl::StatusOr<UniqueFd> ViaOpenat2(int dir_fd, absl::string_view relative, int flags) {
  const std::string path = relative.empty() ? std::string(".") : std::string(relative);
  // The kernel answers EAGAIN when a rename raced with a lookup it must then distrust.
  for (int attempt = 0;; ++attempt) {
    const long fd = RawOpenat2(dir_fd, path.c_str(), flags);
    if (fd >= 0) {
      UniqueFd opened(static_cast<int>(fd));
      // O_PATH | O_NOFOLLOW opens a trailing symlink as itself: refuse it here.
      struct stat st;
      if ((flags & O_PATH) != 0 && fstat(opened.get(), &st) == 0 && S_ISLNK(st.st_mode)) {
        return Escaped(relative, "a component is a symlink");
      }
      return opened;
    }
    const int err = errno;
    if (err == EINTR || (err == EAGAIN && attempt < 16)) continue;
    if (err == ENOSYS) return absl::UnimplementedError("openat2: not supported by this kernel");
    return OpenError(err, relative, dir_fd);
  }
}

// The mount id of an open descriptor, from /proc/self/fdinfo (every kernel since 3.15).
absl::StatusOr<uint64_t> MountId(int fd) {
  const std::string name = absl::StrCat("/proc/self/fdinfo/", fd);
  const int info = open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (info < 0) return ErrnoToStatus(errno, absl::StrCat("open ", name));
  UniqueFd closer(info);
  char buf[1024];
  ssize_t got;
  do {
    got = read(info, buf, sizeof(buf) - 1);
  } while (got < 0 && errno == EINTR);
  if (got < 0) return ErrnoToStatus(errno, absl::StrCat("read ", name));
  buf[got] = '\0';
  for (absl::string_view line : absl::StrSplit(absl::string_view(buf, got), '\n')) {
    if (!absl::ConsumePrefix(&line, "mnt_id:")) continue;
    uint64_t id = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &id)) return id;
  }
  return absl::InternalError(absl::StrCat(name, ": no mnt_id"));
}

absl::StatusOr<UniqueFd> ViaWalk(int dir_fd, absl::string_view relative, int flags) {
  absl::StatusOr<UniqueFd> cur = OpenAt(dir_fd, ".", O_PATH | O_DIRECTORY);
  if (!cur.ok()) return cur.status();
  absl::StatusOr<uint64_t> mount = MountId(cur->get());
  if (!mount.ok()) return mount.status();
  std::vector<absl::string_view> parts;
  if (!relative.empty()) parts = absl::StrSplit(relative, '/');
  for (size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    const std::string name(parts[i]);
    int fd;
    do {
      fd = openat(cur->get(), name.c_str(),
                  O_PATH | O_NOFOLLOW | O_CLOEXEC | (last ? 0 : O_DIRECTORY));
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      const int err = errno;
      struct stat st;
      if (err == ENOTDIR && fstatat(cur->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode)) {
        return Escaped(relative, "a component is a symlink");
      }
      return OpenError(err, relative, cur->get());
    }
    UniqueFd next(fd);
    struct stat st;
    if (fstat(next.get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("fstat ", relative));
    if (S_ISLNK(st.st_mode)) return Escaped(relative, "a component is a symlink");
    absl::StatusOr<uint64_t> next_mount = MountId(next.get());
    if (!next_mount.ok()) return next_mount.status();
    if (*next_mount != *mount) return Escaped(relative, "the path crosses a mount");
    *cur = std::move(next);
  }
  if ((flags & O_PATH) != 0) {
    // Keep the caller's other O_PATH-compatible flags (O_DIRECTORY) meaningful.
    if ((flags & O_DIRECTORY) != 0) {
      struct stat st;
      if (fstat(cur->get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("fstat ", relative));
      if (!S_ISDIR(st.st_mode)) return ErrnoToStatus(ENOTDIR, absl::StrCat("open ", relative));
    }
    return cur;
  }
  return ReopenFd(cur->get(), flags);
}

}  // namespace

absl::Status CheckRelativePath(absl::string_view relative) {
  if (relative.empty()) return absl::OkStatus();
  if (relative.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("path holds a NUL byte");
  }
  for (absl::string_view part : absl::StrSplit(relative, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("path '", relative, "' has an empty, '.' or '..' component: refused"));
    }
  }
  return absl::OkStatus();
}

bool Openat2Supported() {
  static const bool supported = [] {
    const long fd = RawOpenat2(AT_FDCWD, "/", O_PATH | O_CLOEXEC);
    if (fd >= 0) close(static_cast<int>(fd));
    return !(fd < 0 && errno == ENOSYS);
  }();
  return supported;
}

absl::StatusOr<UniqueFd> OpenBeneath(int dir_fd, absl::string_view relative, int flags,
                                     ResolveMethod method) {
  absl::Status valid = CheckRelativePath(relative);
  if (!valid.ok()) return valid;
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
    return absl::InvalidArgumentError("OpenBeneath never creates files");
  }
  flags |= O_CLOEXEC | O_NOFOLLOW;
  if (method == ResolveMethod::kAuto) {
    method = Openat2Supported() ? ResolveMethod::kOpenat2 : ResolveMethod::kWalk;
  }
  if (method == ResolveMethod::kOpenat2) return ViaOpenat2(dir_fd, relative, flags);
  return ViaWalk(dir_fd, relative, flags & ~O_NOFOLLOW);
}

absl::StatusOr<UniqueFd> ReopenFd(int path_fd, int flags) {
  // The magic link is what this is for: no O_NOFOLLOW here.
  const std::string link = absl::StrCat("/proc/self/fd/", path_fd);
  int fd;
  do {
    fd = open(link.c_str(), (flags & ~O_NOFOLLOW) | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    return ErrnoToStatus(errno, absl::StrCat("reopen ", DescribeFd(path_fd)));
  }
  return UniqueFd(fd);
}

}  // namespace btrdupd
