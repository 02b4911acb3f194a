#include "daemon/instance_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace {

// The pid in the lock file, if it holds one.
std::optional<pid_t> ReadPid(int fd) {
  char buf[32];
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return std::nullopt;
  int pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(buf, n)), &pid) ||
      pid <= 0) {
    return std::nullopt;
  }
  return static_cast<pid_t>(pid);
}

int FlockNoWait(int fd, int op) {
  int rc;
  do {
    rc = flock(fd, op | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

}  // namespace

std::string LockPathForDatabase(absl::string_view db_path) {
  return absl::StrCat(db_path, ".lock");
}

absl::StatusOr<std::unique_ptr<InstanceLock>> InstanceLock::Acquire(
    absl::string_view lock_path, absl::string_view what) {
  absl::StatusOr<UniqueFd> fd = OpenPath(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
  if (!fd.ok()) return fd.status();
  if (FlockNoWait(fd->get(), LOCK_EX) != 0) {
    int err = errno;
    if (err != EWOULDBLOCK) {
      return btrdupd::ErrnoToStatus(err, absl::StrCat("flock ", lock_path));
    }
    // The holder writes its pid right after locking; a reader racing with that write
    // may see an empty file, hence the fallback wording.
    std::optional<pid_t> pid = ReadPid(fd->get());
    return absl::FailedPreconditionError(absl::StrCat(
        what, " is already being processed by ",
        pid.has_value() ? absl::StrCat("btrdupd pid ", *pid) : "another btrdupd process",
        " (lock ", lock_path, "); stop it first or wait for it to finish"));
  }
  std::string pid_text = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd->get(), 0) != 0 ||
      pwrite(fd->get(), pid_text.data(), pid_text.size(), 0) !=
          static_cast<ssize_t>(pid_text.size())) {
    return btrdupd::ErrnoToStatus(errno, absl::StrCat("write pid to ", lock_path));
  }
  return std::unique_ptr<InstanceLock>(
      new InstanceLock(std::string(lock_path), std::move(*fd)));
}

std::optional<pid_t> InstanceLock::Holder(absl::string_view lock_path) {
  absl::StatusOr<UniqueFd> fd = OpenPath(lock_path, O_RDONLY | O_NOFOLLOW);
  if (!fd.ok()) return std::nullopt;
  // A shared lock succeeds only when nobody holds the exclusive one.
  if (FlockNoWait(fd->get(), LOCK_SH) == 0) {
    flock(fd->get(), LOCK_UN);
    return std::nullopt;
  }
  return ReadPid(fd->get()).value_or(0);
}

}  // namespace btrdupd
