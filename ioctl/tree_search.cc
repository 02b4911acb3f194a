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
#include "ioctl/unique_fd.h"

namespace btrdupd {
namespace {

static_assert(kSubvolumeRootInode == BTRFS_FIRST_FREE_OBJECTID, "root inode number");

// Results buffer per TREE_SEARCH_V2 call. Items are at most a node (64 KiB)
// in size; a bigger buffer means fewer calls over a large change set.
constexpr size_t kSearchBufferBytes = 256 * 1024;

// One (objectid, type, offset) key; btrfs orders keys by these, in order.
struct Key {
  uint64_t objectid;
  uint32_t type;
  uint64_t offset;
};

// The key right after `key`. Returns false if there is none below `max_objectid`.
bool NextKey(Key& key, uint64_t max_objectid) {
  if (key.offset < std::numeric_limits<uint64_t>::max()) {
    ++key.offset;
  } else if (key.type < std::numeric_limits<uint8_t>::max()) {
    ++key.type;
    key.offset = 0;
  } else if (key.objectid < max_objectid) {
    ++key.objectid;
    key.type = 0;
    key.offset = 0;
  } else {
    return false;
  }
  return true;
}

int64_t TimespecNs(const btrfs_timespec& ts) {
  return static_cast<int64_t>(le64toh(ts.sec)) * 1000000000 + le32toh(ts.nsec);
}

// Decodes the little-endian on-disk INODE_ITEM (which may be unaligned).
ChangedInode DecodeInodeItem(uint64_t ino, const uint8_t* data) {
  btrfs_inode_item item;
  memcpy(&item, data, sizeof(item));
  ChangedInode inode;
  inode.ino = ino;
  inode.transid = le64toh(item.transid);
  inode.generation = le64toh(item.generation);
  inode.size = le64toh(item.size);
  inode.mode = le32toh(item.mode);
  inode.nlink = le32toh(item.nlink);
  inode.mtime_ns = TimespecNs(item.mtime);
  return inode;
}

}  // namespace

absl::StatusOr<std::vector<ChangedInode>> ChangedInodesSince(int subvol_fd,
                                                             uint64_t min_generation) {
  if (min_generation == std::numeric_limits<uint64_t>::max()) {
    return std::vector<ChangedInode>();
  }
  size_t buffer_bytes = kSearchBufferBytes;
  std::vector<uint64_t> storage;  // uint64_t keeps the arguments aligned
  std::vector<ChangedInode> changed;
  const uint64_t max_objectid = BTRFS_LAST_FREE_OBJECTID;
  Key next = {BTRFS_FIRST_FREE_OBJECTID, BTRFS_INODE_ITEM_KEY, 0};

  for (;;) {
    storage.assign((sizeof(btrfs_ioctl_search_args_v2) + buffer_bytes) / sizeof(uint64_t) + 1,
                   0);
    auto* args = reinterpret_cast<btrfs_ioctl_search_args_v2*>(storage.data());
    btrfs_ioctl_search_key& sk = args->key;
    sk.tree_id = 0;  // the subvolume of subvol_fd
    sk.min_objectid = next.objectid;
    sk.min_type = next.type;
    sk.min_offset = next.offset;
    // The range is one interval of compound keys, so it also holds the other
    // item types of every inode in between: those are filtered below.
    sk.max_objectid = max_objectid;
    sk.max_type = BTRFS_INODE_ITEM_KEY;
    sk.max_offset = std::numeric_limits<uint64_t>::max();
    // Skips tree blocks last written at or before min_generation.
    sk.min_transid = min_generation == 0 ? 0 : min_generation + 1;
    sk.max_transid = std::numeric_limits<uint64_t>::max();
    sk.nr_items = std::numeric_limits<uint32_t>::max();
    args->buf_size = buffer_bytes;

    int rc;
    do {
      rc = ioctl(subvol_fd, BTRFS_IOC_TREE_SEARCH_V2, args);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      const int err = errno;
      if (err == EOVERFLOW && args->buf_size > buffer_bytes) {
        buffer_bytes = args->buf_size;  // one item needs more room
        continue;
      }
      return ErrnoToStatus(err, absl::StrCat("TREE_SEARCH_V2 in ", DescribeFd(subvol_fd)));
    }
    if (sk.nr_items == 0) break;

    // Items: a native-endian search header, then the item's on-disk bytes.
    const uint8_t* cursor = reinterpret_cast<const uint8_t*>(args->buf);
    const uint8_t* const end = cursor + buffer_bytes;
    btrfs_ioctl_search_header header;
    for (uint32_t i = 0; i < sk.nr_items; ++i) {
      if (cursor + sizeof(header) > end) {
        return absl::InternalError("TREE_SEARCH_V2: item header past the buffer");
      }
      memcpy(&header, cursor, sizeof(header));
      cursor += sizeof(header);
      if (cursor + header.len > end) {
        return absl::InternalError("TREE_SEARCH_V2: item past the buffer");
      }
      if (header.type == BTRFS_INODE_ITEM_KEY && header.len >= sizeof(btrfs_inode_item)) {
        ChangedInode inode = DecodeInodeItem(header.objectid, cursor);
        // Block generation > G does not mean this item changed after G.
        if (min_generation == 0 || inode.transid > min_generation) changed.push_back(inode);
      }
      cursor += header.len;
      next = Key{header.objectid, header.type, header.offset};
    }
    if (!NextKey(next, max_objectid)) break;
  }
  return changed;
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
