#include "daemon/file_opener.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"
#include "ioctl/subvolumes.h"

namespace btrdupd {
namespace {

// The inode number of every btrfs subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID).
constexpr uint64_t kSubvolumeRootIno = 256;

// `status` with `display` in front of its message (the resolution names relative paths).
absl::Status Named(const absl::Status& status, const std::string& display) {
  return absl::Status(status.code(), absl::StrCat(display, ": ", status.message()));
}

absl::Status Mismatch(const std::string& display, absl::string_view what) {
  return absl::AbortedError(absl::StrCat(display, ": ", what, " (the tree changed)"));
}

int64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// How long a checked subvolume root is used without a new check (see file_opener.h).
constexpr int64_t kKeepRootNs = 1000000000;
// At most this many roots are kept (each one a descriptor).
constexpr size_t kMaxKeptRoots = 16;
// At most this many files are kept open for reading under a guard (a step's group).
constexpr size_t kMaxKeptFiles = 64;

}  // namespace

absl::StatusOr<std::unique_ptr<FileOpener>> FileOpener::Open(const std::string& root,
                                                             Options options) {
  absl::StatusOr<UniqueFd> fd = btrdupd::OpenPath(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<FileOpener>(new FileOpener(root, *std::move(fd), std::move(options)));
}

absl::StatusOr<UniqueFd> FileOpener::OpenSubvolumeRoot(uint64_t id, const std::string& path,
                                                       const std::string& display) {
  absl::Status valid = CheckRelativePath(path);
  if (!valid.ok()) return Named(valid, display);
  absl::StatusOr<UniqueFd> dir =
      OpenBeneath(root_fd_.get(), path, O_RDONLY | O_DIRECTORY, options_.method);
  if (!dir.ok()) return Named(dir.status(), display);
  struct stat st;
  if (fstat(dir->get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("fstat ", display));
  if (st.st_ino != kSubvolumeRootIno) return Mismatch(display, "not a subvolume root");
  absl::StatusOr<uint64_t> actual = SubvolumeIdOfFd(dir->get());
  if (!actual.ok()) return Named(actual.status(), display);
  if (*actual != id) {
    return Mismatch(display, absl::StrCat("subvolume ", *actual, ", not ", id));
  }
  return dir;
}

absl::StatusOr<UniqueFd> FileOpener::OpenSubvolume(const SubvolumeRef& subvol) {
  return OpenSubvolumeRoot(subvol.id, subvol.path, subvol.display);
}

absl::StatusOr<UniqueFd> FileOpener::OpenPath(const FileRef& file) {
  absl::Status valid = CheckRelativePath(file.path);
  if (!valid.ok()) return Named(valid, file.display);
  absl::string_view in_subvol = file.path;
  if (!file.subvol_path.empty() &&
      !absl::ConsumePrefix(&in_subvol, absl::StrCat(file.subvol_path, "/"))) {
    return Mismatch(file.display, absl::StrCat("not below its subvolume ", file.subvol_path));
  }
  if (in_subvol.empty()) return Mismatch(file.display, "not a regular file");
  if (options_.before_open) options_.before_open(file);
  // The kept root is used under the lock: it may be replaced (closed) by another call.
  std::lock_guard<std::mutex> lock(kept_mu_);
  absl::Cleanup forget = [this] {
    if (keepers_ == 0) kept_.clear();  // no guard: nothing stays open
  };
  absl::StatusOr<RootFd> subvol = SubvolumeRootOf(file);
  if (!subvol.ok()) return subvol.status();
  absl::StatusOr<UniqueFd> fd = OpenBeneath(subvol->fd, in_subvol, O_PATH, options_.method);
  if (!fd.ok()) return Named(fd.status(), file.display);
  struct stat st;
  if (fstat(fd->get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("fstat ", file.display));
  if (!S_ISREG(st.st_mode)) return Mismatch(file.display, "not a regular file");
  if (st.st_dev != subvol->dev) return Mismatch(file.display, "in another subvolume");
  if (file.ino != 0 && st.st_ino != file.ino) {
    return Mismatch(file.display, absl::StrCat("inode ", st.st_ino, ", not ", file.ino));
  }
  return fd;
}

absl::StatusOr<FileOpener::RootFd> FileOpener::SubvolumeRootOf(const FileRef& file) {
  const int64_t now = MonotonicNs();
  for (auto it = kept_.begin(); it != kept_.end(); ++it) {
    if (it->id != file.subvol_id || it->path != file.subvol_path) continue;
    if (now - it->checked_ns < kKeepRootNs) return RootFd{it->fd.get(), it->dev};
    kept_.erase(it);  // too old: checked anew below
    break;
  }
  absl::StatusOr<UniqueFd> opened =
      OpenSubvolumeRoot(file.subvol_id, file.subvol_path, file.display);
  if (!opened.ok()) return opened.status();
  struct stat st;
  if (fstat(opened->get(), &st) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("fstat ", file.display));
  }
  // Drop the stale ones (and the oldest, when there are many) before keeping this one.
  kept_.erase(std::remove_if(kept_.begin(), kept_.end(),
                             [now](const KeptRoot& k) { return now - k.checked_ns >= kKeepRootNs; }),
              kept_.end());
  if (kept_.size() >= kMaxKeptRoots) kept_.erase(kept_.begin());
  KeptRoot kept;
  kept.id = file.subvol_id;
  kept.path = file.subvol_path;
  kept.fd = *std::move(opened);
  kept.dev = st.st_dev;
  kept.checked_ns = now;
  kept_.push_back(std::move(kept));
  return RootFd{kept_.back().fd.get(), st.st_dev};
}

FileOpener::RootKeeper FileOpener::KeepRoots() {
  std::lock_guard<std::mutex> lock(kept_mu_);
  ++keepers_;
  return RootKeeper(this);
}

void FileOpener::EndKeep() {
  std::lock_guard<std::mutex> lock(kept_mu_);
  if (--keepers_ == 0) {
    kept_.clear();
    kept_files_.clear();
  }
}

absl::StatusOr<UniqueFd> FileOpener::OpenForRead(const FileRef& file) {
  {
    std::lock_guard<std::mutex> lock(kept_mu_);
    if (keepers_ > 0) {
      const int64_t now = MonotonicNs();
      for (auto it = kept_files_.begin(); it != kept_files_.end(); ++it) {
        if (it->ino != file.ino || it->subvol_id != file.subvol_id || it->path != file.path ||
            it->subvol_path != file.subvol_path) {
          continue;
        }
        if (file.ino != 0 && now - it->checked_ns < kKeepRootNs) {
          const int dup = fcntl(it->fd.get(), F_DUPFD_CLOEXEC, 0);
          if (dup >= 0) return UniqueFd(dup);
        }
        kept_files_.erase(it);  // too old (or no inode to hold it to): checked anew
        break;
      }
    }
  }
  absl::StatusOr<UniqueFd> path_fd = OpenPath(file);
  if (!path_fd.ok()) return path_fd.status();
  // O_NOATIME keeps hashing from dirtying every inode; only the owner or root may use it.
  absl::StatusOr<UniqueFd> fd = ReopenFd(path_fd->get(), O_RDONLY | O_NONBLOCK | O_NOATIME);
  if (!fd.ok() && absl::IsPermissionDenied(fd.status())) {
    fd = ReopenFd(path_fd->get(), O_RDONLY | O_NONBLOCK);
  }
  if (!fd.ok()) return Named(fd.status(), file.display);
  std::lock_guard<std::mutex> lock(kept_mu_);
  if (keepers_ > 0 && file.ino != 0) {
    const int dup = fcntl(fd->get(), F_DUPFD_CLOEXEC, 0);
    if (dup >= 0) {
      if (kept_files_.size() >= kMaxKeptFiles) kept_files_.erase(kept_files_.begin());
      KeptFile kept;
      kept.subvol_id = file.subvol_id;
      kept.subvol_path = file.subvol_path;
      kept.path = file.path;
      kept.ino = file.ino;
      kept.fd = UniqueFd(dup);
      kept.checked_ns = MonotonicNs();
      kept_files_.push_back(std::move(kept));
    }
  }
  return fd;
}

}  // namespace btrdupd
