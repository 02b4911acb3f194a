#include "daemon/real_volume_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ioctl/directory.h"
#include "ioctl/filesystem.h"
#include "ioctl/open_beneath.h"
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

  absl::StatusOr<absl::flat_hash_map<uint64_t, VolumeStat>> StatRegularFiles(
      const std::vector<VolumeDirEntry>& entries) override {
    // A tree search costs more than an lstat per call, but reads the inode items of a run
    // of files with close inode numbers at once (the files of a directory mostly were
    // made together). Runs of fewer files, and files far from the others (a directory
    // that grew over years), are left to StatEntry; each search stops after a few items
    // per inode of its run (the extent items of a fragmented file are many).
    constexpr uint64_t kMaxGap = 8;   // inode numbers from one file of a run to the next
    constexpr size_t kMinRun = 8;     // files in a run worth a search
    constexpr size_t kItemsPerInode = 4;
    std::vector<uint64_t> inos;
    inos.reserve(entries.size());
    for (const VolumeDirEntry& entry : entries) {
      if (entry.type == EntryType::kRegular) inos.push_back(entry.ino);
    }
    std::sort(inos.begin(), inos.end());
    inos.erase(std::unique(inos.begin(), inos.end()), inos.end());
    absl::flat_hash_map<uint64_t, VolumeStat> out;
    for (size_t first = 0; first < inos.size();) {
      size_t end = first + 1;
      while (end < inos.size() && inos[end] - inos[end - 1] <= kMaxGap) ++end;
      const size_t run = end - first;
      const uint64_t lo = inos[first];
      const uint64_t hi = inos[end - 1];
      first = end;
      if (run < kMinRun) continue;
      // The directory's own subvolume tree: a regular file is never another subvolume's.
      absl::StatusOr<std::vector<InodeItem>> items =
          InodeItemsBetween(fd_.get(), lo, hi, kItemsPerInode * (hi - lo + 1) + 16);
      if (!items.ok()) continue;  // this run's files are statted one by one
      for (const InodeItem& item : *items) {
        // An inode in between may be another directory's, or not a file; one with no
        // link left is being deleted (what lstat says of its name is the truth).
        if (!item.is_regular_file() || item.nlink == 0 ||
            !std::binary_search(inos.begin(), inos.end(), item.ino)) {
          continue;
        }
        VolumeStat st;
        st.dev = self_.dev;
        st.ino = item.ino;
        st.type = EntryType::kRegular;
        st.size = item.size;
        st.mtime_ns = item.mtime_ns;
        st.ctime_ns = item.ctime_ns;
        out.emplace(item.ino, st);
      }
    }
    return out;
  }

 private:
  UniqueFd fd_;
  VolumeStat self_;
};

// Undoes the octal escapes of a mountinfo field ("\040" for a space, ...).
std::string UnescapeMountField(absl::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const absl::string_view digits = field.substr(i + 1, 3);
      if (digits.size() == 3 && digits[0] >= '0' && digits[0] <= '3' && digits[1] >= '0' &&
          digits[1] <= '7' && digits[2] >= '0' && digits[2] <= '7') {
        out.push_back(static_cast<char>((digits[0] - '0') * 64 + (digits[1] - '0') * 8 +
                                        (digits[2] - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

// True when nothing is mounted anywhere below the directory open as `fd` (the process'
// mount table, /proc/self/mountinfo, lists none); false when that cannot be known.
bool NothingMountedBelow(int fd) {
  char target[PATH_MAX + 1];
  const std::string link = absl::StrCat("/proc/self/fd/", fd);
  const ssize_t n = readlink(link.c_str(), target, PATH_MAX);
  if (n <= 0) return false;
  std::string root(target, static_cast<size_t>(n));
  if (root != "/") root.push_back('/');
  std::ifstream mountinfo("/proc/self/mountinfo");
  if (!mountinfo) return false;
  std::string line;
  bool read_any = false;
  while (std::getline(mountinfo, line)) {
    read_any = true;
    // Fields: id parent major:minor root mount_point ...
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    if (fields.size() < 5) return false;
    const std::string mount_point = UnescapeMountField(fields[4]);
    if (mount_point.size() > root.size() && mount_point.compare(0, root.size(), root) == 0) {
      return false;
    }
  }
  return read_any;
}

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

absl::StatusOr<UniqueFd> RealVolumeFs::OpenDirFd(absl::string_view path, int flags) {
  // O_NOATIME: listing a directory must not update its atime, which would write its
  // inode and make it look changed to the next incremental pass. Only the owner or root
  // may ask for it: without it otherwise.
  const bool path_only = (flags & O_PATH) != 0;  // takes no other flag
  absl::StatusOr<UniqueFd> fd =
      OpenBeneath(root_fd_.get(), path, flags | O_DIRECTORY | (path_only ? 0 : O_NOATIME));
  if (!path_only && absl::IsPermissionDenied(fd.status())) {
    fd = OpenBeneath(root_fd_.get(), path, flags | O_DIRECTORY);
  }
  if (absl::IsAborted(fd.status())) {
    // A symlink or a mount point where the index had a directory: as seen from the
    // volume root, no directory is at that path now.
    return absl::NotFoundError(absl::StrCat(Absolute(path), ": ", fd.status().message()));
  }
  return fd;
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
  // The listing comes from the filesystem's trees, relative to the subvolume holding the
  // root. When the root is that subvolume's own root and nothing is mounted below it,
  // every listed path is reachable from the root and leads to that subvolume, so it
  // needs no check of its own (which would read each subvolume's root inode: one
  // disk read per snapshot on a cold cache).
  absl::StatusOr<FileStatus> root_st = StatFd(root_fd_.get());
  const bool check_each = !root_st.ok() || root_st->ino != kSubvolumeRootInode ||
                          !NothingMountedBelow(root_fd_.get());
  std::vector<VolumeSubvolume> out;
  for (SubvolumeInfo& info : *listed) {
    if (!info.path.empty() && check_each) {
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
  if (path.empty()) {
    absl::StatusOr<FileStatus> st = StatFd(root_fd_.get());
    if (!st.ok()) return st.status();
    return ToVolumeStat(*st);
  }
  const size_t slash = path.rfind('/');
  const absl::string_view dir = slash == absl::string_view::npos ? "" : path.substr(0, slash);
  const absl::string_view name =
      slash == absl::string_view::npos ? path : path.substr(slash + 1);
  absl::StatusOr<UniqueFd> parent = OpenDirFd(dir, O_PATH);
  if (!parent.ok()) return parent.status();
  absl::StatusOr<FileStatus> st = StatAt(parent->get(), name);
  if (!st.ok()) {
    // Named by its path in the volume (the descriptor names only its directory).
    absl::Status named(st.status().code(),
                       absl::StrCat("stat ", Absolute(path), ": ", st.status().message()));
    st.status().ForEachPayload(
        [&](absl::string_view url, const absl::Cord& payload) { named.SetPayload(url, payload); });
    return named;
  }
  return ToVolumeStat(*st);
}

absl::StatusOr<std::vector<InodeChange>> RealVolumeFs::ChangedInodesSince(
    absl::string_view subvol_path, uint64_t generation) {
  absl::StatusOr<UniqueFd> fd = OpenDirFd(subvol_path);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<std::vector<InodeItem>> changed =
      btrdupd::ChangedInodesSince(fd->get(), generation);
  if (!changed.ok()) return changed.status();
  std::vector<InodeChange> out;
  out.reserve(changed->size());
  for (const InodeItem& c : *changed) {
    InodeChange change;
    change.ino = c.ino;
    change.transid = c.transid;
    change.size = c.size;
    change.mtime_ns = c.mtime_ns;
    change.ctime_ns = c.ctime_ns;
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
