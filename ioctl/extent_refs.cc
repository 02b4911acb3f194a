#include "ioctl/extent_refs.h"

#include <endian.h>
#include <errno.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {
namespace {

// TREE_SEARCH_V2 result buffer: a file with many extents takes several calls.
constexpr size_t kSearchBufferBytes = 64 * 1024;
// LOGICAL_INO_V2 answer buffer: first try, and the most the kernel accepts.
constexpr size_t kReferrersFirstBytes = 64 * 1024;
constexpr size_t kReferrersMaxBytes = 16 * 1024 * 1024;

// Little-endian fields of the on-disk btrfs_file_extent_item (packed, maybe unaligned).
uint64_t Le64At(const uint8_t* p) {
  uint64_t v;
  memcpy(&v, p, sizeof(v));
  return le64toh(v);
}

FileExtentItem DecodeItem(uint64_t file_offset, const uint8_t* data, uint32_t len) {
  FileExtentItem item;
  item.file_offset = file_offset;
  const size_t header = offsetof(btrfs_file_extent_item, disk_bytenr);
  if (len < header) return item;
  const uint8_t type = data[offsetof(btrfs_file_extent_item, type)];
  item.compressed = data[offsetof(btrfs_file_extent_item, compression)] != 0;
  if (type == BTRFS_FILE_EXTENT_INLINE) {
    item.inline_data = true;
    item.length = Le64At(data + offsetof(btrfs_file_extent_item, ram_bytes));
    return item;
  }
  if (len < sizeof(btrfs_file_extent_item)) return item;
  item.prealloc = type == BTRFS_FILE_EXTENT_PREALLOC;
  item.disk_bytenr = Le64At(data + offsetof(btrfs_file_extent_item, disk_bytenr));
  item.disk_bytes = Le64At(data + offsetof(btrfs_file_extent_item, disk_num_bytes));
  item.extent_offset = Le64At(data + offsetof(btrfs_file_extent_item, offset));
  item.length = Le64At(data + offsetof(btrfs_file_extent_item, num_bytes));
  return item;
}

}  // namespace

absl::StatusOr<std::vector<FileExtentItem>> ReadFileExtentItems(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, absl::StrCat("fstat ", DescribeFd(fd)));
  }
  std::vector<uint64_t> storage;  // uint64_t keeps the arguments aligned
  size_t buffer_bytes = kSearchBufferBytes;
  std::vector<FileExtentItem> items;
  uint64_t next_offset = 0;
  for (;;) {
    storage.assign((sizeof(btrfs_ioctl_search_args_v2) + buffer_bytes) / sizeof(uint64_t) + 1,
                   0);
    auto* args = reinterpret_cast<btrfs_ioctl_search_args_v2*>(storage.data());
    btrfs_ioctl_search_key& sk = args->key;
    sk.tree_id = 0;  // the subvolume of fd
    sk.min_objectid = sk.max_objectid = st.st_ino;
    sk.min_type = sk.max_type = BTRFS_EXTENT_DATA_KEY;
    sk.min_offset = next_offset;
    sk.max_offset = std::numeric_limits<uint64_t>::max();
    sk.min_transid = 0;
    sk.max_transid = std::numeric_limits<uint64_t>::max();
    sk.nr_items = std::numeric_limits<uint32_t>::max();
    args->buf_size = buffer_bytes;
    int rc;
    do {
      rc = ioctl(fd, BTRFS_IOC_TREE_SEARCH_V2, args);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      const int err = errno;
      if (err == EOVERFLOW && args->buf_size > buffer_bytes) {
        buffer_bytes = args->buf_size;
        continue;
      }
      return ErrnoToStatus(err, absl::StrCat("TREE_SEARCH_V2 extents of ", DescribeFd(fd)));
    }
    if (sk.nr_items == 0) break;
    const uint8_t* cursor = reinterpret_cast<const uint8_t*>(args->buf);
    const uint8_t* const end = cursor + buffer_bytes;
    btrfs_ioctl_search_header header;
    uint64_t last_offset = 0;
    for (uint32_t i = 0; i < sk.nr_items; ++i) {
      if (cursor + sizeof(header) > end) {
        return absl::InternalError("TREE_SEARCH_V2: item header past the buffer");
      }
      memcpy(&header, cursor, sizeof(header));
      cursor += sizeof(header);
      if (cursor + header.len > end) {
        return absl::InternalError("TREE_SEARCH_V2: item past the buffer");
      }
      if (header.objectid == st.st_ino && header.type == BTRFS_EXTENT_DATA_KEY) {
        items.push_back(DecodeItem(header.offset, cursor, header.len));
      }
      last_offset = header.offset;
      cursor += header.len;
    }
    if (last_offset == std::numeric_limits<uint64_t>::max()) break;
    next_offset = last_offset + 1;
  }
  return items;
}

absl::StatusOr<std::vector<ExtentReferrer>> ExtentReferrers(int fd, uint64_t disk_bytenr) {
  size_t bytes = kReferrersFirstBytes;
  for (;;) {
    std::vector<uint64_t> storage(bytes / sizeof(uint64_t), 0);
    auto* container = reinterpret_cast<btrfs_data_container*>(storage.data());
    btrfs_ioctl_logical_ino_args args;
    memset(&args, 0, sizeof(args));
    args.logical = disk_bytenr;
    args.size = bytes;
    args.flags = BTRFS_LOGICAL_INO_ARGS_IGNORE_OFFSET;
    args.inodes = reinterpret_cast<uintptr_t>(container);
    int rc;
    do {
      rc = ioctl(fd, BTRFS_IOC_LOGICAL_INO_V2, &args);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      const int err = errno;
      return ErrnoToStatus(err, absl::StrCat("LOGICAL_INO_V2 of extent ", disk_bytenr,
                                             " through ", DescribeFd(fd)));
    }
    if (container->elem_missed > 0) {
      if (bytes >= kReferrersMaxBytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat("extent ", disk_bytenr, " has more references than ",
                         kReferrersMaxBytes, " bytes of LOGICAL_INO answer hold"));
      }
      bytes = std::min(kReferrersMaxBytes,
                       std::max(bytes * 4, bytes + container->bytes_missing + 4096));
      continue;
    }
    std::vector<ExtentReferrer> referrers;
    // Triples: inode, offset, root.
    for (uint32_t i = 0; i + 2 < container->elem_cnt; i += 3) {
      ExtentReferrer r;
      r.ino = container->val[i];
      r.offset = container->val[i + 1];
      r.root = container->val[i + 2];
      referrers.push_back(r);
    }
    return referrers;
  }
}

std::vector<DiskExtent> DiskExtentsOf(absl::Span<const FileExtentItem> items,
                                      absl::Span<const Extent> fiemap) {
  std::vector<DiskExtent> out;
  absl::flat_hash_map<uint64_t, size_t> index_of;  // bytenr -> position in out
  for (const FileExtentItem& item : items) {
    if (item.inline_data || item.disk_bytenr == 0) continue;
    bool shared = false;
    const uint64_t begin = item.file_offset;
    const uint64_t end = item.file_offset + item.length;
    for (const Extent& e : fiemap) {
      if (e.shared && e.logical < end && begin < e.logical + e.length) {
        shared = true;
        break;
      }
    }
    auto [it, inserted] = index_of.try_emplace(item.disk_bytenr, out.size());
    if (inserted) {
      DiskExtent d;
      d.bytenr = item.disk_bytenr;
      d.disk_bytes = item.disk_bytes;
      d.shared = shared;
      out.push_back(d);
    } else {
      // The file refers to this extent more than once: that alone makes it shared.
      out[it->second].shared = true;
    }
  }
  return out;
}

}  // namespace btrdupd
