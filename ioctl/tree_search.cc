#include "ioctl/tree_search.h"

#include <endian.h>
#include <errno.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <string.h>
#include <sys/ioctl.h>

#include <limits>

#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"
#include "ioctl/tree_search_items.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {
namespace {

static_assert(kSubvolumeRootInode == BTRFS_FIRST_FREE_OBJECTID, "root inode number");

// Wraps (no overflow) for times a user set beyond the year 2262: only compared for
// equality with what the same conversion gave before.
int64_t TimespecNs(const btrfs_timespec& ts) {
  return static_cast<int64_t>(le64toh(ts.sec) * uint64_t{1000000000} + le32toh(ts.nsec));
}

// Decodes the little-endian on-disk INODE_ITEM (which may be unaligned).
InodeItem DecodeInodeItem(uint64_t ino, const uint8_t* data) {
  btrfs_inode_item item;
  memcpy(&item, data, sizeof(item));
  InodeItem inode;
  inode.ino = ino;
  inode.transid = le64toh(item.transid);
  inode.created_generation = le64toh(item.generation);
  inode.size = le64toh(item.size);
  inode.mode = le32toh(item.mode);
  inode.nlink = le32toh(item.nlink);
  inode.mtime_ns = TimespecNs(item.mtime);
  inode.ctime_ns = TimespecNs(item.ctime);
  return inode;
}

}  // namespace

absl::StatusOr<std::vector<InodeItem>> ChangedInodesSince(int subvol_fd,
                                                             uint64_t min_generation) {
  if (min_generation == std::numeric_limits<uint64_t>::max()) {
    return std::vector<InodeItem>();
  }
  std::vector<InodeItem> changed;
  TreeSearchRange range;
  range.min = TreeKey{BTRFS_FIRST_FREE_OBJECTID, BTRFS_INODE_ITEM_KEY, 0};
  // One interval of compound keys, so it also holds the other item types of every
  // inode in between: those are filtered below.
  range.max = TreeKey{BTRFS_LAST_FREE_OBJECTID, BTRFS_INODE_ITEM_KEY,
                      std::numeric_limits<uint64_t>::max()};
  // Skips tree blocks last written at or before min_generation.
  range.min_transid = min_generation == 0 ? 0 : min_generation + 1;
  const std::string what = absl::StrCat("in ", DescribeFd(subvol_fd));
  absl::Status status =
      ForEachTreeItem(subvol_fd, range, what.c_str(), [&](const TreeItem& item) {
        if (item.key.type != BTRFS_INODE_ITEM_KEY || item.len < sizeof(btrfs_inode_item)) {
          return;
        }
        InodeItem inode = DecodeInodeItem(item.key.objectid, item.data);
        // Block generation > G does not mean this item changed after G.
        if (min_generation == 0 || inode.transid > min_generation) changed.push_back(inode);
      });
  if (!status.ok()) return status;
  return changed;
}

absl::StatusOr<std::vector<InodeItem>> InodeItemsBetween(int subvol_fd, uint64_t min_ino,
                                                           uint64_t max_ino, size_t max_items) {
  std::vector<InodeItem> items;
  if (min_ino > max_ino) return items;
  TreeSearchRange range;
  range.max_items = max_items;
  range.buffer_bytes = 64 * 1024;
  range.min = TreeKey{min_ino, BTRFS_INODE_ITEM_KEY, 0};
  // As above: the other item types of the inodes in between come too, filtered below.
  range.max = TreeKey{max_ino, BTRFS_INODE_ITEM_KEY, std::numeric_limits<uint64_t>::max()};
  const std::string what = absl::StrCat("in ", DescribeFd(subvol_fd));
  absl::Status status =
      ForEachTreeItem(subvol_fd, range, what.c_str(), [&](const TreeItem& item) {
        if (item.key.type != BTRFS_INODE_ITEM_KEY || item.len < sizeof(btrfs_inode_item)) {
          return;
        }
        items.push_back(DecodeInodeItem(item.key.objectid, item.data));
      });
  if (!status.ok()) return status;
  return items;
}

absl::StatusOr<uint64_t> SubvolumeGeneration(int subvol_fd) {
  btrfs_ioctl_get_subvol_info_args info;
  memset(&info, 0, sizeof(info));
  if (ioctl(subvol_fd, BTRFS_IOC_GET_SUBVOL_INFO, &info) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, absl::StrCat("GET_SUBVOL_INFO ", DescribeFd(subvol_fd)));
  }
  return static_cast<uint64_t>(info.generation);
}

absl::StatusOr<std::string> InodePath(int subvol_fd, uint64_t ino) {
  btrfs_ioctl_ino_lookup_args args;
  memset(&args, 0, sizeof(args));
  args.treeid = 0;  // the subvolume of subvol_fd
  args.objectid = ino;
  if (ioctl(subvol_fd, BTRFS_IOC_INO_LOOKUP, &args) != 0) {
    const int err = errno;
    return ErrnoToStatus(err,
                         absl::StrCat("INO_LOOKUP inode ", ino, " in ", DescribeFd(subvol_fd)));
  }
  args.name[sizeof(args.name) - 1] = '\0';
  std::string path(args.name);
  while (!path.empty() && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace btrdupd
