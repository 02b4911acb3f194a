// RealFileAccess's facts about files and subvolumes (daemon/real_file_access.h): inode
// attributes, shared extents (FIEMAP, backrefs), subvolume flags, active swap files.
// Split from real_file_access.cc, which opens, reads and hints files.

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "daemon/real_file_access.h"
#include "ioctl/errno_status.h"
#include "ioctl/extent_refs.h"
#include "ioctl/fiemap.h"
#include "ioctl/filesystem.h"
#include "ioctl/inode_flags.h"
#include "ioctl/subvolumes.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {
namespace {

int64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// The file's extents that hold its bytes: space preallocated past the end of the file
// (fallocate --keep-size) is not content, and must not make two files that share every
// byte look different.
absl::StatusOr<std::vector<Extent>> ExtentsBeforeEof(int fd, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) != 0) return btrdupd::ErrnoToStatus(errno, absl::StrCat("fstat ", path));
  absl::StatusOr<std::vector<Extent>> extents = ReadExtents(fd);
  if (!extents.ok()) return extents.status();
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  extents->erase(std::remove_if(extents->begin(), extents->end(),
                                [size](const Extent& e) { return e.logical >= size; }),
                 extents->end());
  return extents;
}

// /proc/swaps escapes spaces, tabs, newlines and backslashes as \ooo.
std::string UnescapeOctal(const std::string& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\\' && i + 3 < in.size() &&
        in[i + 1] >= '0' && in[i + 1] <= '7') {
      out.push_back(static_cast<char>((in[i + 1] - '0') * 64 + (in[i + 2] - '0') * 8 +
                                      (in[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<FileAttributes> RealFileAccess::GetAttributes(const FileRef& file) {
  const std::string& path = file.display;
  absl::StatusOr<UniqueFd> fd = opener_->OpenForRead(file);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<InodeFlags> flags = GetInodeFlags(fd->get());
  if (!flags.ok()) return flags.status();
  struct stat st;
  if (fstat(fd->get(), &st) != 0) {
    return btrdupd::ErrnoToStatus(errno, absl::StrCat("fstat ", path));
  }
  FileAttributes out;
  out.nocow = flags->nocow;
  out.immutable = flags->immutable;
  out.append_only = flags->append_only;
  out.swapfile = IsActiveSwap(st.st_dev, st.st_ino);
  out.owner = st.st_uid;
  return out;
}

absl::StatusOr<bool> RealFileAccess::SharesAllExtents(const FileRef& a, const FileRef& b) {
  absl::StatusOr<UniqueFd> fa = opener_->OpenForRead(a);
  if (!fa.ok()) return fa.status();
  absl::StatusOr<UniqueFd> fb = opener_->OpenForRead(b);
  if (!fb.ok()) return fb.status();
  absl::StatusOr<std::vector<Extent>> ea = ExtentsBeforeEof(fa->get(), a.display);
  if (!ea.ok()) return ea.status();
  absl::StatusOr<std::vector<Extent>> eb = ExtentsBeforeEof(fb->get(), b.display);
  if (!eb.ok()) return eb.status();
  // Two files that are holes only store nothing: there is nothing to share.
  if (ea->empty() && eb->empty()) return true;
  return btrdupd::SharesAllExtents(*ea, *eb);
}

absl::StatusOr<bool> RealFileAccess::HasSharedExtents(const FileRef& file) {
  absl::StatusOr<UniqueFd> fd = opener_->OpenForRead(file);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<SharingSummary> summary = SummarizeSharing(fd->get());
  if (!summary.ok()) return summary.status();
  return summary->shared_bytes > 0;
}

absl::StatusOr<std::vector<HeldExtent>> RealFileAccess::HeldExtents(const FileRef& file,
                                                                    bool resolve_shared) {
  // A file with more shared extents than this keeps the rest unresolved (not freed).
  constexpr int kMaxBackrefWalks = 1024;
  absl::StatusOr<UniqueFd> fd = opener_->OpenForRead(file);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<std::vector<Extent>> fiemap = ReadExtents(fd->get());  // syncs the file
  if (!fiemap.ok()) return fiemap.status();
  absl::StatusOr<std::vector<FileExtentItem>> items = ReadFileExtentItems(fd->get());
  if (!items.ok()) return items.status();
  std::vector<HeldExtent> held;
  bool synced = false;
  int walks = 0;
  for (const DiskExtent& d : DiskExtentsOf(*items, *fiemap)) {
    HeldExtent h;
    h.bytenr = d.bytenr;
    h.disk_bytes = d.disk_bytes;
    h.shared = d.shared;
    if (d.shared && resolve_shared && walks++ < kMaxBackrefWalks) {
      absl::StatusOr<std::vector<ExtentReferrer>> refs = ExtentReferrers(fd->get(), d.bytenr);
      if (!refs.ok() && absl::IsNotFound(refs.status()) && !synced) {
        // Made in the running transaction: the backref walk needs it committed.
        synced = true;
        if (SyncFilesystem(fd->get()).ok()) refs = ExtentReferrers(fd->get(), d.bytenr);
      }
      if (refs.ok()) {
        std::vector<InodeKey> keys;
        for (const ExtentReferrer& r : *refs) keys.push_back(InodeKey{r.root, r.ino});
        h.referrers = std::move(keys);
      }
    }
    held.push_back(std::move(h));
  }
  return held;
}

absl::StatusOr<SubvolumeFlags> RealFileAccess::GetSubvolumeFlags(const SubvolumeRef& subvol) {
  absl::StatusOr<UniqueFd> fd = opener_->OpenSubvolume(subvol);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<SubvolumeInfo> info = GetSubvolumeInfoFd(fd->get());
  if (!info.ok()) return info.status();
  SubvolumeFlags flags;
  flags.read_only = info->read_only;
  flags.received = !info->received_uuid.empty();
  struct statvfs vfs;
  if (fstatvfs(fd->get(), &vfs) != 0) {
    return btrdupd::ErrnoToStatus(errno, absl::StrCat("statvfs ", subvol.display));
  }
  flags.on_read_only_mount = (vfs.f_flag & ST_RDONLY) != 0;
  return flags;
}

absl::Status RealFileAccess::SetSubvolumeReadOnly(const SubvolumeRef& subvol, bool read_only) {
  // Only through a descriptor whose subvolume id was checked (FileOpener::OpenSubvolume).
  absl::StatusOr<UniqueFd> fd = opener_->OpenSubvolume(subvol);
  if (!fd.ok()) return fd.status();
  return SetReadOnlyFd(fd->get(), read_only);
}

bool RealFileAccess::IsActiveSwap(dev_t dev, ino_t ino) {
  const int64_t now = MonotonicNs();
  if (swaps_read_at_ns_ < 0 || now - swaps_read_at_ns_ > 1000000000) {
    swaps_read_at_ns_ = now;
    swaps_.clear();
    std::ifstream in("/proc/swaps");
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string name;
      std::string type;
      fields >> name >> type;
      if (type != "file") continue;
      struct stat st;
      if (stat(UnescapeOctal(name).c_str(), &st) == 0) swaps_.emplace_back(st.st_dev, st.st_ino);
    }
  }
  for (const auto& [d, i] : swaps_) {
    if (d == dev && i == ino) return true;
  }
  return false;
}

}  // namespace btrdupd
