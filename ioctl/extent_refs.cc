#include "ioctl/extent_refs.h"

#include <endian.h>
#include <errno.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>  // TEMP_FAILURE_RETRY

#include <algorithm>
#include <cstddef>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"
#include "ioctl/tree_search_items.h"
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
  std::vector<FileExtentItem> items;
  TreeSearchRange range;
  range.min = TreeKey{static_cast<uint64_t>(st.st_ino), BTRFS_EXTENT_DATA_KEY, 0};
  range.max = TreeKey{static_cast<uint64_t>(st.st_ino), BTRFS_EXTENT_DATA_KEY,
                      std::numeric_limits<uint64_t>::max()};
  range.buffer_bytes = kSearchBufferBytes;
  const std::string what = absl::StrCat("extents of ", DescribeFd(fd));
  absl::Status status = ForEachTreeItem(fd, range, what.c_str(), [&](const TreeItem& item) {
    if (item.key.objectid == st.st_ino && item.key.type == BTRFS_EXTENT_DATA_KEY) {
      items.push_back(DecodeItem(item.key.offset, item.data, item.len));
    }
  });
  if (!status.ok()) return status;
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
    int rc = TEMP_FAILURE_RETRY(ioctl(fd, BTRFS_IOC_LOGICAL_INO_V2, &args));
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
