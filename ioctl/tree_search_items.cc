#include "ioctl/tree_search_items.h"

#include <errno.h>
#include <linux/btrfs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>  // TEMP_FAILURE_RETRY

#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace {

// The key right after `key`. Returns false if there is none up to `max`'s objectid.
bool NextKey(TreeKey& key, uint64_t max_objectid) {
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

}  // namespace

absl::Status ForEachTreeItem(int fd, const TreeSearchRange& range, const char* what,
                             const std::function<void(const TreeItem&)>& visit) {
  size_t buffer_bytes = range.buffer_bytes;
  // uint64_t keeps the arguments aligned; left uninitialized (new[], not a vector): see
  // below.
  std::unique_ptr<uint64_t[]> storage;
  size_t storage_words = 0;
  TreeKey next = range.min;
  size_t visited = 0;
  for (;;) {
    // Only the arguments need zeroing: the kernel fills the buffer, and only the items it
    // reports are read (zeroing 64 KiB for each call was 1.5 % of a one-shot run's CPU).
    const size_t words = (sizeof(btrfs_ioctl_search_args_v2) + buffer_bytes) / sizeof(uint64_t) + 1;
    if (words > storage_words) {
      storage.reset(new uint64_t[words]);
      storage_words = words;
    }
    auto* args = reinterpret_cast<btrfs_ioctl_search_args_v2*>(storage.get());
    memset(args, 0, sizeof(*args));
    btrfs_ioctl_search_key& sk = args->key;
    sk.tree_id = 0;  // the subvolume of fd
    sk.min_objectid = next.objectid;
    sk.min_type = next.type;
    sk.min_offset = next.offset;
    sk.max_objectid = range.max.objectid;
    sk.max_type = range.max.type;
    sk.max_offset = range.max.offset;
    sk.min_transid = range.min_transid;
    sk.max_transid = std::numeric_limits<uint64_t>::max();
    sk.nr_items = std::numeric_limits<uint32_t>::max();
    args->buf_size = buffer_bytes;

    int rc = TEMP_FAILURE_RETRY(ioctl(fd, BTRFS_IOC_TREE_SEARCH_V2, args));
    if (rc < 0) {
      const int err = errno;
      if (err == EOVERFLOW && args->buf_size > buffer_bytes) {
        buffer_bytes = args->buf_size;  // one item needs more room
        continue;
      }
      return ErrnoToStatus(err, absl::StrCat("TREE_SEARCH_V2 ", what));
    }
    if (sk.nr_items == 0) return absl::OkStatus();

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
      next = TreeKey{header.objectid, header.type, header.offset};
      visit(TreeItem{next, cursor, header.len});
      cursor += header.len;
      if (++visited == range.max_items) return absl::OkStatus();
    }
    if (!NextKey(next, range.max.objectid)) return absl::OkStatus();
  }
}

}  // namespace btrdupd
