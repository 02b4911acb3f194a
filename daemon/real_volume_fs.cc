#include "daemon/real_volume_fs.h"

#include <dirent.h>
#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "ioctl/directory.h"
#include "ioctl/filesystem.h"
#include "ioctl/subvolumes.h"
#include "ioctl/tree_search.h"

namespace btrdupd {
namespace {

EntryType TypeOfMode(mode_t mode) {
  if (S_ISREG(mode)) return EntryType::kRegular;
  if (S_ISDIR(mode)) return EntryType::kDirectory;
  if (S_ISLNK(mode)) return EntryType::kSymlink;
  return EntryType::kOther;
}

EntryType TypeOfDType(unsigned char d_type) {
  switch (d_type) {
    case DT_REG:
      return EntryType::kRegular;
    case DT_DIR:
      return EntryType::kDirectory;
    case DT_LNK:
      return EntryType::kSymlink;
    case DT_UNKNOWN:
      return EntryType::kUnknown;
    default:
      return EntryType::kOther;
  }
}

VolumeStat ToVolumeStat(const FileStatus& st) {
  VolumeStat out;
  out.dev = st.dev;
  out.ino = st.ino;
  out.type = TypeOfMode(st.mode);
  out.size = st.size;
  out.mtime_ns = st.mtime_ns;
  out.ctime_ns = st.ctime_ns;
  return out;
}

class RealDir : public VolumeDir {
 public:
  RealDir(UniqueFd fd, VolumeStat self) : fd_(std::move(fd)), self_(self) {}

  const VolumeStat& self() const override { return self_; }

  absl::StatusOr<std::vector<VolumeDirEntry>> ReadEntries() override {
    absl::StatusOr<std::vector<DirectoryEntry>> entries = ReadDirectory(fd_.get());
    if (!entries.ok()) return entries.status();
    std::vector<VolumeDirEntry> out;
    out.reserve(entries->size());
    for (DirectoryEntry& entry : *entries) {
      out.push_back(VolumeDirEntry{std::move(entry.name), entry.ino, TypeOfDType(entry.d_type)});
    }
    return out;
  }

  absl::StatusOr<VolumeStat> StatEntry(absl::string_view name) override {
    absl::StatusOr<FileStatus> st = StatAt(fd_.get(), name);
    if (!st.ok()) return st.status();
    return ToVolumeStat(*st);
  }

 private:
  UniqueFd fd_;
  VolumeStat self_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RealVolumeFs>> RealVolumeFs::Open(const std::string& root) {
  absl::StatusOr<UniqueFd> fd = OpenDirectoryAt(AT_FDCWD, root);
  if (!fd.ok()) return fd.status();
  absl::Status btrfs = IsBtrfs(fd->get());
  if (!btrfs.ok()) return btrfs;
  absl::StatusOr<std::string> fsid = Fsid(fd->get());
  if (!fsid.ok()) return fsid.status();
  return std::unique_ptr<RealVolumeFs>(
      new RealVolumeFs(root, std::move(*fd), std::move(*fsid)));
}

RealVolumeFs::RealVolumeFs(std::string root, UniqueFd root_fd, std::string fsid)
    : root_(std::move(root)), root_fd_(std::move(root_fd)), fsid_(std::move(fsid)) {}

std::string RealVolumeFs::Absolute(absl::string_view path) const {
  return path.empty() ? root_ : absl::StrCat(root_, "/", path);
}

absl::StatusOr<UniqueFd> RealVolumeFs::OpenDirFd(absl::string_view path) {
  return OpenDirectoryAt(root_fd_.get(), path.empty() ? absl::string_view(".") : path);
}

absl::StatusOr<std::vector<VolumeSubvolume>> RealVolumeFs::ListSubvolumes() {
  // The filesystem's newest transaction, read before the listing: a subvolume generation
  // below it belongs to a transaction closed before the listing; one equal to it may
  // still be running and take more changes, so one less is reported (see volume_fs.h).
  uint64_t committed = 0;  // every transaction up to this one is committed
  if (commit_before_listing_) {
    absl::StatusOr<uint64_t> transid = CommitTransaction(root_fd_.get());
    if (transid.ok()) committed = *transid;  // else: the rule below, as without
  }
  absl::StatusOr<BtrfsFsInfo> fs_info = GetFsInfo(root_fd_.get());
  if (!fs_info.ok()) return fs_info.status();
  const uint64_t newest = fs_info->generation;
  absl::StatusOr<std::vector<SubvolumeInfo>> listed = btrdupd::ListSubvolumes(root_);
  if (!listed.ok()) return listed.status();
  std::vector<VolumeSubvolume> out;
  for (SubvolumeInfo& info : *listed) {
    if (!info.path.empty()) {
      // Reachable at its path, on this filesystem, and really that subvolume?
      absl::StatusOr<UniqueFd> fd = OpenDirFd(info.path);
      if (!fd.ok()) continue;
      absl::StatusOr<FileStatus> st = StatFd(fd->get());
      if (!st.ok() || st->ino != kSubvolumeRootInode) continue;
      absl::StatusOr<std::string> fsid = Fsid(fd->get());
      if (!fsid.ok() || *fsid != fsid_) continue;
      absl::StatusOr<SubvolumeInfo> here = GetSubvolumeInfo(Absolute(info.path));
      if (!here.ok() || here->id != info.id) continue;
    }
    VolumeSubvolume sub;
    sub.id = info.id;
    sub.path = std::move(info.path);
    sub.uuid = std::move(info.uuid);
    sub.parent_uuid = std::move(info.parent_uuid);
    sub.received_uuid = std::move(info.received_uuid);
    sub.read_only = info.read_only;
    sub.created_generation = info.created_generation;
    sub.generation = info.generation < newest || info.generation <= committed ||
                             info.generation == 0
                         ? info.generation
                         : info.generation - 1;
    out.push_back(std::move(sub));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<VolumeDir>> RealVolumeFs::OpenDir(absl::string_view path) {
  absl::StatusOr<UniqueFd> fd = OpenDirFd(path);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<FileStatus> st = StatFd(fd->get());
  if (!st.ok()) return st.status();
  return std::unique_ptr<VolumeDir>(new RealDir(std::move(*fd), ToVolumeStat(*st)));
}

absl::StatusOr<VolumeStat> RealVolumeFs::Stat(absl::string_view path) {
  absl::StatusOr<FileStatus> st =
      StatAt(root_fd_.get(), path.empty() ? absl::string_view(".") : path);
  if (!st.ok()) return st.status();
  return ToVolumeStat(*st);
}

absl::StatusOr<std::vector<InodeChange>> RealVolumeFs::ChangedInodesSince(
    absl::string_view subvol_path, uint64_t generation) {
  absl::StatusOr<UniqueFd> fd = OpenDirFd(subvol_path);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<std::vector<ChangedInode>> changed =
      btrdupd::ChangedInodesSince(fd->get(), generation);
  if (!changed.ok()) return changed.status();
  std::vector<InodeChange> out;
  out.reserve(changed->size());
  for (const ChangedInode& c : *changed) {
    InodeChange change;
    change.ino = c.ino;
    change.transid = c.transid;
    change.size = c.size;
    change.mtime_ns = c.mtime_ns;
    change.is_dir = c.is_directory();
    change.is_regular = c.is_regular_file();
    out.push_back(change);
  }
  return out;
}

absl::StatusOr<std::string> RealVolumeFs::InodePath(absl::string_view subvol_path,
                                                   uint64_t ino) {
  absl::StatusOr<UniqueFd> fd = OpenDirFd(subvol_path);
  if (!fd.ok()) return fd.status();
  return btrdupd::InodePath(fd->get(), ino);
}

}  // namespace btrdupd
