#include "ioctl/directory.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace {

// The kernel's record layout for getdents64 (not exported by glibc's headers).
struct LinuxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// 128 KiB holds a few thousand typical entries per syscall.
constexpr size_t kGetdentsBufferBytes = 128 * 1024;

FileStatus FromStat(const struct stat& st) {
  FileStatus out;
  out.dev = static_cast<uint64_t>(st.st_dev);
  out.ino = static_cast<uint64_t>(st.st_ino);
  out.mode = st.st_mode;
  out.nlink = static_cast<uint64_t>(st.st_nlink);
  out.size = static_cast<uint64_t>(st.st_size);
  out.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  out.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return out;
}

}  // namespace

absl::StatusOr<std::vector<DirectoryEntry>> ReadDirectory(int dir_fd) {
  std::unique_ptr<char[]> buffer(new char[kGetdentsBufferBytes]);
  std::vector<DirectoryEntry> entries;
  for (;;) {
    long n = syscall(SYS_getdents64, dir_fd, buffer.get(), kGetdentsBufferBytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      return ErrnoToStatus(err, absl::StrCat("getdents64 ", DescribeFd(dir_fd)));
    }
    if (n == 0) break;
    for (long offset = 0; offset < n;) {
      const auto* d = reinterpret_cast<const LinuxDirent64*>(buffer.get() + offset);
      offset += d->d_reclen;
      const char* name = d->d_name;
      if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) {
        continue;
      }
      DirectoryEntry entry;
      entry.name.assign(name, strlen(name));
      entry.ino = d->d_ino;
      entry.d_type = d->d_type;
      entries.push_back(std::move(entry));
    }
  }
  return entries;
}

absl::StatusOr<FileStatus> StatAt(int dir_fd, absl::string_view name) {
  const std::string name_str(name);
  struct stat st;
  if (fstatat(dir_fd, name_str.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, absl::StrCat("stat ", name_str, " in ", DescribeFd(dir_fd)));
  }
  return FromStat(st);
}

absl::StatusOr<FileStatus> StatFd(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, absl::StrCat("fstat ", DescribeFd(fd)));
  }
  return FromStat(st);
}

absl::StatusOr<UniqueFd> OpenDirectoryAt(int dir_fd, absl::string_view name) {
  // O_NOATIME: listing a directory must not update its atime, which would write its inode
  // and make it look changed to the next incremental pass. Only the owner or root may
  // ask for it (EPERM otherwise): then open without.
  absl::StatusOr<UniqueFd> fd =
      OpenAt(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NOATIME);
  if (fd.ok() || !absl::IsPermissionDenied(fd.status())) return fd;
  return OpenAt(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
}

}  // namespace btrdupd
