// The one loop around BTRFS_IOC_TREE_SEARCH_V2: every item of a subvolume's tree whose
// key lies in a range, in key order, fetched in batches.
//
// Used by ioctl/tree_search.cc (inode items) and ioctl/extent_refs.cc (a file's extent
// items); the raw search structs never leave ioctl/. Needs CAP_SYS_ADMIN. `fd` is any
// descriptor inside the subvolume searched. Thread-safe: no shared state.

#ifndef BTRDUPD_IOCTL_TREE_SEARCH_ITEMS_H_
#define BTRDUPD_IOCTL_TREE_SEARCH_ITEMS_H_

#include <cstddef>
#include <cstdint>
#include <functional>

#include "absl/status/status.h"

namespace btrdupd {

// One (objectid, type, offset) key; btrfs orders keys by these, in order.
struct TreeKey {
  uint64_t objectid = 0;
  uint32_t type = 0;
  uint64_t offset = 0;
};

struct TreeSearchRange {
  TreeKey min;
  TreeKey max;  // inclusive; the range is one interval of compound keys
  // Skips tree blocks last written at or before min_transid - 1 (blocks, not items:
  // an item returned may be older; check its own generation).
  uint64_t min_transid = 0;
  // Results buffer per call; grown when one item needs more.
  size_t buffer_bytes = 256 * 1024;
  // Stops after visiting this many items (0: no limit), for a caller that has another
  // way to learn the rest.
  size_t max_items = 0;
};

// One item: its key and its on-disk (little-endian, possibly unaligned) bytes, valid
// only during the callback.
struct TreeItem {
  TreeKey key;
  const uint8_t* data = nullptr;
  uint32_t len = 0;
};

// Calls `visit` for every item in `range`, in key order. Errors carry the errno and
// name `what` (e.g. "extents of /mnt/a").
absl::Status ForEachTreeItem(int fd, const TreeSearchRange& range, const char* what,
                             const std::function<void(const TreeItem&)>& visit);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_TREE_SEARCH_ITEMS_H_
