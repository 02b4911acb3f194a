#include "daemon/volume_open.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/index_recovery.h"
#include "daemon/log.h"
#include "daemon/volume_name.h"
#include "ioctl/errno_status.h"
#include "ioctl/filesystem.h"
#include "ioctl/inode_flags.h"
#include "ioctl/open_beneath.h"
#include "ioctl/subvolumes.h"
#include "ioctl/trusted_file.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

}  // namespace

absl::StatusOr<VolumeLocation> ResolveVolume(absl::string_view volume,
                                             absl::string_view db_dir) {
  const std::string given(volume);
  char resolved[PATH_MAX];
  if (realpath(given.c_str(), resolved) == nullptr) {
    const int err = errno;
    return ErrnoToStatusWithMessage(
        err, absl::StrCat(given, ": ", ErrnoText(err),
                          err == EACCES ? " (run btrdupd as root)"
                                        : " (give the mount point of a btrfs filesystem)"));
  }
  VolumeLocation location;
  location.path = resolved;
  struct stat st;
  if (stat(location.path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        location.path, " is not a directory (give the mount point of a btrfs filesystem)"));
  }
  if (access(location.path.c_str(), R_OK | X_OK) != 0) {
    const int err = errno;
    return absl::PermissionDeniedError(absl::StrCat(
        location.path, " is not readable: ", ErrnoText(err), " (run btrdupd as root)"));
  }
  absl::Status btrfs = IsBtrfs(location.path);
  if (!btrfs.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        btrfs.message(), " — btrdupd only works on btrfs; give a btrfs mount point"));
  }
  location.name = VolumeNameForPath(location.path);
  if (db_dir.empty()) {
    location.db_dir = absl::StrCat(location.path, "/.btrdupd");
    location.db_file = "btrdupd.db";
  } else {
    location.db_dir = std::string(db_dir);
    location.db_file = absl::StrCat(location.name, ".btrdupd.db");
  }
  location.db_path = absl::StrCat(location.db_dir, "/", location.db_file);
  return location;
}

// Creates the directory that holds the database. A new one is made NOCOW (when the
// filesystem allows it): SQLite rewrites pages in place, and on a copy-on-write file each
// commit would move them, fragmenting the database and giving the next change check a
// trail of rewritten extent items to read. Best effort: without it btrdupd works the same.
absl::StatusOr<UniqueFd> PrepareDatabaseDirectory(const std::string& path) {
  if (mkdir(path.c_str(), 0700) == 0) {
    // Checked again: e.g. a symlink made in between.
    absl::StatusOr<UniqueFd> trusted = OpenTrustedDirectory(path);
    if (!trusted.ok()) return trusted.status();
    absl::StatusOr<UniqueFd> dir = ReopenFd(trusted->get(), O_RDONLY | O_DIRECTORY);
    if (dir.ok()) {
      absl::Status nocow = SetNoCow(dir->get());
      if (!nocow.ok()) LogDebug(path, "database directory stays copy-on-write: %s", nocow.message());
    }
    return trusted;
  }
  if (errno == EEXIST) {
    absl::StatusOr<UniqueFd> trusted = OpenTrustedDirectory(path);
    if (trusted.ok() || !absl::IsFailedPrecondition(trusted.status())) return trusted;
    return absl::FailedPreconditionError(absl::StrCat(
        "database directory ", trusted.status().message(),
        "; or keep the database outside the volume with --db-dir=DIR"));
  }
  const int err = errno;
  return ErrnoToStatus(err, absl::StrCat("cannot create ", path));
}

absl::StatusOr<UniqueFd> OpenDatabaseDirectory(const VolumeLocation& location) {
  return OpenPath(location.db_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW);
}

std::string DatabaseBeneath(const UniqueFd& dir, absl::string_view file) {
  return absl::StrCat("/proc/self/fd/", dir.get(), "/", file);
}

namespace {

// Creates `dir` (and its parent) root-owned 0755 if missing; refuses one another user
// could write to, since whoever can replace a lock file can run two btrdupds at once.
absl::Status PrepareLockDir(const std::string& dir) {
  const std::string parent = dir.substr(0, dir.rfind('/'));
  for (const std::string& d : {parent, dir}) {
    if (d.empty()) continue;
    if (mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) {
      return btrdupd::ErrnoToStatus(errno, absl::StrCat("cannot create lock directory ", d));
    }
  }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    return btrdupd::ErrnoToStatus(errno, absl::StrCat("lock directory ", dir));
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lock directory ", dir,
        " must be a directory owned by btrdupd's user and writable by it alone"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<InstanceLock>> LockVolume(const VolumeLocation& location,
                                                         absl::string_view lock_dir) {
  absl::StatusOr<std::string> fsid = Fsid(location.path);
  if (!fsid.ok()) return fsid.status();
  absl::StatusOr<SubvolumeInfo> subvol = GetSubvolumeInfo(location.path);
  if (!subvol.ok()) return subvol.status();
  const std::string dir(lock_dir);
  absl::Status prepared = PrepareLockDir(dir);
  if (!prepared.ok()) return prepared;
  return InstanceLock::Acquire(LockPathForVolume(dir, *fsid, subvol->id), location.path);
}

absl::StatusOr<OpenedVolume> OpenVolumeForWork(absl::string_view volume,
                                               const VolumeOpenOptions& options,
                                               absl::Time now) {
  OpenedVolume opened;
  const std::string& db_dir = options.db_dir;
  absl::StatusOr<VolumeLocation> location = ResolveVolume(volume, db_dir);
  if (!location.ok()) return location.status();
  opened.location = *std::move(location);
  const VolumeLocation& where = opened.location;
  if (options.require_root && geteuid() != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        where.path, ": btrdupd must run as root to read every file and dedupe it "
                    "(run it with sudo, or from root's crontab)"));
  }
  // One btrdupd per volume (daemon or one-shot), by fsid and subvolume id whatever the
  // database path, taken before anything is created; another holder is named by its pid.
  absl::StatusOr<std::unique_ptr<InstanceLock>> lock = LockVolume(where, options.lock_dir);
  if (!lock.ok()) return lock.status();
  opened.lock = *std::move(lock);
  absl::StatusOr<UniqueFd> made = PrepareDatabaseDirectory(where.db_dir);
  if (!made.ok()) return made.status();
  opened.db_dir = *std::move(made);
  if (options.before_database_open) options.before_database_open();
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = OpenIndexRecovering(
      DatabaseBeneath(opened.db_dir, where.db_file), options.verify_index, where.path, now);
  if (!index.ok()) {
    return absl::Status(index.status().code(), absl::StrCat("database ", where.db_path, ": ",
                                                            index.status().message()));
  }
  opened.index = *std::move(index);
  return opened;
}

bool IsLockRefusal(const absl::Status& status) {
  return absl::IsFailedPrecondition(status) && ErrnoOf(status) == EWOULDBLOCK;
}

}  // namespace btrdupd
