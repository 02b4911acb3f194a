#include "daemon/instance_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>  // TEMP_FAILURE_RETRY

#include <cstdlib>
#include <map>
#include <utility>

#include "absl/synchronization/mutex.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"

namespace btrdupd {

struct InstanceLock::Held {
  UniqueFd fd;
  pid_t owner = 0;  // a forked child inherits the registry, not the right to the lock
};

namespace {

// Lock paths this process holds, so a second Acquire() in the same process shares the
// hold instead of contending with itself (flock locks belong to open file descriptions).
absl::Mutex& HeldMutex() {
  static absl::Mutex* mu = new absl::Mutex();
  return *mu;
}
std::map<std::string, std::weak_ptr<InstanceLock::Held>>& HeldLocks() {
  static auto* held = new std::map<std::string, std::weak_ptr<InstanceLock::Held>>();
  return *held;
}

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
  int rc = TEMP_FAILURE_RETRY(flock(fd, op | LOCK_NB));
  return rc;
}

}  // namespace

std::string LockPathForDatabase(absl::string_view db_path) {
  return absl::StrCat(db_path, ".lock");
}

std::string LockPathForVolume(absl::string_view lock_dir, absl::string_view fsid,
                              uint64_t subvol_id) {
  return absl::StrCat(lock_dir, "/", fsid, "-", subvol_id, ".lock");
}

absl::StatusOr<std::unique_ptr<InstanceLock>> InstanceLock::Acquire(
    absl::string_view lock_path, absl::string_view what) {
  absl::MutexLock guard(&HeldMutex());
  const std::string key(lock_path);
  if (std::shared_ptr<Held> held = HeldLocks()[key].lock();
      held != nullptr && held->owner == getpid()) {
    return std::unique_ptr<InstanceLock>(new InstanceLock(key, std::move(held)));
  }
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
    return WithErrno(
        absl::FailedPreconditionError(absl::StrCat(
            what, " is already being processed by ",
            pid.has_value() ? absl::StrCat("btrdupd pid ", *pid) : "another btrdupd process",
            " (lock ", lock_path, "); stop it first or wait for it to finish")),
        EWOULDBLOCK);
  }
  std::string pid_text = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd->get(), 0) != 0 ||
      pwrite(fd->get(), pid_text.data(), pid_text.size(), 0) !=
          static_cast<ssize_t>(pid_text.size())) {
    // The pid only names the holder to others; the flock is the lock. On a full disk
    // the lock is still held (others then say "another btrdupd process").
    if (errno != ENOSPC && errno != EDQUOT) {
      return btrdupd::ErrnoToStatus(errno, absl::StrCat("write pid to ", lock_path));
    }
  }
  auto held = std::make_shared<Held>();
  held->fd = std::move(*fd);
  held->owner = getpid();
  HeldLocks()[key] = held;
  return std::unique_ptr<InstanceLock>(new InstanceLock(key, std::move(held)));
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
