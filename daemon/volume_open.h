// Opening a volume for work: the one place it happens, for one-shot runs and the daemon
// alike (VolumeSession::Open calls OpenVolumeForWork; DaemonVolume opens a
// VolumeSession), so both modes set a volume up the same way:
//  1. ResolveVolume: the path the user typed -> an existing, readable directory on btrfs,
//     and where its database is;
//  2. root, when the mode dedupes (`require_root`);
//  3. LockVolume: one btrdupd per btrfs filesystem and subvolume (InstanceLock), taken
//     before anything is created;
//  4. PrepareDatabaseDirectory: created 0700 and NOCOW when new, and trusted only as
//     root left it; it is kept open, and the database is named through that descriptor
//     (DatabaseBeneath: `/proc/self/fd/N/<file>`), so a directory swapped in after the
//     check is never used, and no mount path is too long for SQLite;
//  5. the database itself (OpenIndexRecovering: created, migrated to this version, or -
//     when damaged - set aside and rebuilt, daemon/index_recovery.h).
// What else a volume needs before work starts belongs here too, in that order.
//
// Every error names the volume (or the file) and says what to do. A volume that another
// process holds is FailedPrecondition carrying EWOULDBLOCK: IsLockRefusal() tells it from
// the other refusals. `--status` only reads: it resolves with ResolveVolume and opens the
// database through its directory (OpenDatabaseDirectory), without lock or root.

#ifndef BTRDUPD_DAEMON_VOLUME_OPEN_H_
#define BTRDUPD_DAEMON_VOLUME_OPEN_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/index.h"
#include "daemon/instance_lock.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {

// Where a volume's files are, resolved from what the user typed.
struct VolumeLocation {
  std::string path;     // canonical mount path (realpath)
  std::string name;     // VolumeNameForPath(path)
  std::string db_path;  // the database file: db_dir + "/" + db_file, for messages
  std::string db_dir;   // the directory that holds it
  std::string db_file;  // its name in db_dir
};

// Resolves `volume` and checks it is an existing, readable directory on btrfs.
// `db_dir` empty means the default location inside the volume. Does not open anything.
absl::StatusOr<VolumeLocation> ResolveVolume(absl::string_view volume,
                                             absl::string_view db_dir);

// Creates the directory that holds a volume's database (0700, NOCOW where possible), or
// checks the one that is there: a directory, not a symlink, owned by root (or the running
// user), not writable by group or others (ioctl/trusted_file.h). Anything else is
// FailedPrecondition saying how to fix it or to use --db-dir; the volume is refused.
// Returns the checked directory (O_PATH).
absl::StatusOr<UniqueFd> PrepareDatabaseDirectory(const std::string& path);

// The database directory of `location` for reading (`--status`, `--explain`): O_PATH,
// not through a symlink in its last component; NotFound when it is not there.
absl::StatusOr<UniqueFd> OpenDatabaseDirectory(const VolumeLocation& location);

// `/proc/self/fd/<dir>/<file>`: `file` in the directory `dir` refers to, whatever is at
// that directory's path now. Short, whatever the length of the directory's path.
std::string DatabaseBeneath(const UniqueFd& dir, absl::string_view file);

// A volume opened for work: held (lock) and with its database open, for as long as this
// lives. Members are destroyed in reverse order: the database closes before the lock
// goes.
struct OpenedVolume {
  VolumeLocation location;
  std::unique_ptr<InstanceLock> lock;
  UniqueFd db_dir;  // the checked directory the database is opened through
  std::unique_ptr<VolumeIndex> index;
};

// Takes the lock of the btrfs filesystem and subvolume at `location` (by fsid and
// subvolume id, in `lock_dir`, created if missing: see daemon/instance_lock.h), so one
// btrdupd works on it whatever database path or mount path the others use.
// FailedPrecondition naming the holder's pid when another process holds it.
absl::StatusOr<std::unique_ptr<InstanceLock>> LockVolume(
    const VolumeLocation& location, absl::string_view lock_dir = kDefaultLockDir);

struct VolumeOpenOptions {
  std::string db_dir;         // as for --db-dir ("" = inside the volume)
  bool require_root = true;   // any mode that dedupes
  bool verify_index = false;  // check every page of the database first
  std::string lock_dir = kDefaultLockDir;
  // Called after the database directory is checked, before the database is opened
  // (tests change the tree at that moment).
  std::function<void()> before_database_open;
};

// Steps 1-5 above. `now` dates a damaged database set aside (daemon/index_recovery.h).
absl::StatusOr<OpenedVolume> OpenVolumeForWork(absl::string_view volume,
                                               const VolumeOpenOptions& options,
                                               absl::Time now);

// The volume is held by another process (see InstanceLock).
bool IsLockRefusal(const absl::Status& status);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_VOLUME_OPEN_H_
