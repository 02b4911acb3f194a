// InstanceLock: at most one btrdupd process works on a volume at a time.
//
// A volume is locked per btrfs filesystem and subvolume, whatever its database path or
// the path it was named by: the lock file is
// `/run/btrdupd/locks/<fsid>-<subvolume id>.lock` (LockPathForVolume; see LockVolume in
// daemon/volume_open.h). It is held with
// flock(LOCK_EX) for as long as the InstanceLock lives and released by the kernel when
// the process dies in any way (kill -9 included), so a crash never leaves a stale lock.
// The holder writes its pid into the file, so a second btrdupd (daemon or one-shot) is
// refused with a message naming that pid:
//   "/mnt/data is already being processed by btrdupd pid 1234 (lock /run/btrdupd/locks/<fsid>-5.lock)"
// The file itself is never deleted: deleting a lock file while another process waits to
// open it would let two processes each hold a lock on a different inode.
//
// The descriptor is close-on-exec, so child processes (duperemove) never inherit it.
//
// Within one process the lock is shared: acquiring a lock path this process already
// holds succeeds and shares the hold (the file is unlocked when the last InstanceLock
// for it goes away). So the daemon and the volume session may both take it without
// locking each other out.
//
// Thread-safe.

#ifndef BTRDUPD_DAEMON_INSTANCE_LOCK_H_
#define BTRDUPD_DAEMON_INSTANCE_LOCK_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {

// Where volume locks live (root-owned, not group/other-writable; the systemd unit keeps
// it across daemon restarts).
inline constexpr char kDefaultLockDir[] = "/run/btrdupd/locks";

// The lock file that guards the database at `db_path` (older releases locked this).
std::string LockPathForDatabase(absl::string_view db_path);

// The lock file for subvolume `subvol_id` of the btrfs filesystem `fsid`.
std::string LockPathForVolume(absl::string_view lock_dir, absl::string_view fsid,
                              uint64_t subvol_id);

class InstanceLock {
 public:
  // Takes the lock at `lock_path` without waiting; the directory must exist.
  // `what` names the volume in the refusal message. Errors:
  //   FailedPrecondition  another process holds it ("... by btrdupd pid N ...", or
  //                       "by another process" when its pid cannot be read), with
  //                       ErrnoOf() == EWOULDBLOCK (ioctl/errno_status.h);
  //   others              the file cannot be opened or locked (path and errno named).
  static absl::StatusOr<std::unique_ptr<InstanceLock>> Acquire(absl::string_view lock_path,
                                                               absl::string_view what);

  // If some process holds the lock at `lock_path` now: the pid written in it (0 if it
  // cannot be read yet). nullopt if nobody holds it (or the file does not exist).
  static std::optional<pid_t> Holder(absl::string_view lock_path);

  ~InstanceLock() = default;  // the last holder closes the descriptor: lock released
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

  const std::string& path() const { return path_; }

  struct Held;  // the locked descriptor, shared by this process's holders (private use)

 private:
  InstanceLock(std::string path, std::shared_ptr<Held> held)
      : path_(std::move(path)), held_(std::move(held)) {}

  std::string path_;
  std::shared_ptr<Held> held_;
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_INSTANCE_LOCK_H_
