// Which on-disk extents a file holds, and who else holds them: what a dedupe of the
// file would free.
//
// FIEMAP (ioctl/fiemap.h) says where a file's bytes are and whether a range is SHARED,
// but not how big the on-disk extent behind a range is (a file may use part of a larger
// extent: the rest stays allocated while anything refers to the extent) nor who shares
// it. This header reads both from btrfs itself:
//  - ReadFileExtentItems: the inode's EXTENT_DATA items (BTRFS_IOC_TREE_SEARCH_V2 on the
//    file's subvolume tree): for each range of the file, the on-disk extent (start and
//    size on disk) it uses.
//  - ExtentReferrers: every (subvolume, inode) referring to one on-disk extent
//    (BTRFS_IOC_LOGICAL_INO_V2 with IGNORE_OFFSET, a backref walk that also sees files
//    of snapshots that share the tree block holding the reference).
//  - DiskExtentsOf: the pure combination of the items with FIEMAP's SHARED flags: each
//    distinct on-disk extent once, marked shared if any range of the file in it is.
//
// Both ioctls need CAP_SYS_ADMIN. Call ReadExtents (which syncs the file) first, so
// dirty data has extent items. Answers are snapshots: a concurrent writer can change
// them right after.
//
// Thread-safe: no shared state.

#ifndef BTRDUPD_IOCTL_EXTENT_REFS_H_
#define BTRDUPD_IOCTL_EXTENT_REFS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ioctl/fiemap.h"

namespace btrdupd {

// One EXTENT_DATA item: where the file range [file_offset, file_offset + length) lives.
struct FileExtentItem {
  uint64_t file_offset = 0;
  uint64_t length = 0;         // file bytes the item covers (inline: the data's size)
  uint64_t disk_bytenr = 0;    // start of the on-disk extent; 0 for a hole or inline data
  uint64_t disk_bytes = 0;     // size of the whole on-disk extent (compressed size if so)
  uint64_t extent_offset = 0;  // where in the (uncompressed) extent the range starts
  bool inline_data = false;    // stored in the metadata item itself
  bool compressed = false;
  bool prealloc = false;       // preallocated, reads as zeroes
};

// Every EXTENT_DATA item of the open file `fd`, in file order.
absl::StatusOr<std::vector<FileExtentItem>> ReadFileExtentItems(int fd);

// One reference to an on-disk extent.
struct ExtentReferrer {
  uint64_t root = 0;    // subvolume (tree) id
  uint64_t ino = 0;     // inode number in that subvolume
  uint64_t offset = 0;  // file offset of the reference (as the kernel reports it)
};

// Every reference to the on-disk extent that starts at `disk_bytenr` (as
// FileExtentItem::disk_bytenr), from any subvolume, asked through `fd` (any descriptor
// on the filesystem). A file referring to the extent several times appears several
// times. The walk starts from the extent tree as committed: NotFound for an extent
// made in the running transaction (a new write, or one moved by a dedupe not yet
// committed); SyncFilesystem (ioctl/filesystem.h) and ask again. ResourceExhausted if
// there are more references than 16 MiB of answer holds.
absl::StatusOr<std::vector<ExtentReferrer>> ExtentReferrers(int fd, uint64_t disk_bytenr);

// One on-disk extent a file uses.
struct DiskExtent {
  uint64_t bytenr = 0;      // start on disk
  uint64_t disk_bytes = 0;  // allocated size: what freeing it returns
  bool shared = false;      // FIEMAP marks some range of the file in it SHARED
};

// The distinct on-disk extents `items` use (holes and inline data have none), in order
// of first use; an extent counts as shared if any FIEMAP extent in `fiemap` that
// overlaps a range of the file using it is marked SHARED. Pure: no kernel call.
std::vector<DiskExtent> DiskExtentsOf(absl::Span<const FileExtentItem> items,
                                      absl::Span<const Extent> fiemap);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_EXTENT_REFS_H_
