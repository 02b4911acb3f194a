// Change detection on one btrfs subvolume: BTRFS_IOC_TREE_SEARCH_V2 over the
// subvolume's tree, its current generation, and inode -> path lookup.
//
// A btrfs generation (transid) is the number of a transaction. Every inode
// records the transid that last modified it, so "what changed since the
// pass that saw generation G" is "inodes whose transid > G". Directory
// inodes change when entries are added, removed or renamed, so deletions
// show up as their parent directory.
//
// Visibility: btrfs writes inode updates (size, times, transid) and new
// directory entries into the tree lazily ("delayed inodes"), at the latest
// when the transaction commits, and the search reads the tree. Call
// SyncFilesystem (ioctl/filesystem.h) first to see every change made so far.
// Without it nothing is lost, only seen one pass later: a change not yet
// visible will carry a transid greater than the SubvolumeGeneration() read
// now. So record SubvolumeGeneration() taken before the search as the next
// starting point -- not the largest transid returned.
//
// These calls need CAP_SYS_ADMIN (except SubvolumeGeneration). `subvol_fd` is
// any descriptor inside the subvolume (normally its root directory); the
// subvolume searched is the one containing it.
//
// Thread-safe: no shared state.

#ifndef BTRDUPD_IOCTL_TREE_SEARCH_H_
#define BTRDUPD_IOCTL_TREE_SEARCH_H_

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace btrdupd {

// The subvolume root directory's inode number (BTRFS_FIRST_FREE_OBJECTID).
inline constexpr uint64_t kSubvolumeRootInode = 256;

// An inode as its INODE_ITEM records it.
struct InodeItem {
  uint64_t ino = 0;
  uint64_t transid = 0;     // transaction that last modified the inode
  uint64_t created_generation = 0;  // transaction that created it (tells reused numbers
                                    // apart); `transid` is the last write
  uint64_t size = 0;
  uint32_t mode = 0;        // st_mode: type and permissions
  uint32_t nlink = 0;
  int64_t mtime_ns = 0;     // since the Unix epoch
  int64_t ctime_ns = 0;     // since the Unix epoch

  bool is_directory() const { return S_ISDIR(mode); }
  bool is_regular_file() const { return S_ISREG(mode); }
};

// Every inode of the subvolume whose transid > min_generation, in inode
// order, including the subvolume root directory (kSubvolumeRootInode).
// Unchanged parts of the tree are skipped cheaply (the search key's
// min_transid filters whole tree blocks), so the cost follows the amount of
// change, not the size of the subvolume. min_generation 0 lists every inode,
// including those with transid 0 (mkfs leaves the top-level root directory so).
absl::StatusOr<std::vector<InodeItem>> ChangedInodesSince(int subvol_fd,
                                                             uint64_t min_generation);

// The inode items of the subvolume with min_ino <= inode <= max_ino, in inode order: one
// search for a run of files with close inode numbers (the files of one directory,
// mostly). Every other item of those inodes (refs, extents: a fragmented file has
// many) is read too and dropped; the search stops after max_items items of any kind
// (0: no limit), so the inodes after that point may be missing. The items are as of
// the last commit (see above).
absl::StatusOr<std::vector<InodeItem>> InodeItemsBetween(int subvol_fd, uint64_t min_ino,
                                                           uint64_t max_ino,
                                                           size_t max_items = 0);

// The generation of the subvolume's root as of the last committed transaction
// that changed it (BTRFS_IOC_GET_SUBVOL_INFO). Changes made after this call
// get a larger transid, so ChangedInodesSince(SubvolumeGeneration()) taken
// before a pass finds everything the pass might have missed (and possibly
// some changes it already saw).
absl::StatusOr<uint64_t> SubvolumeGeneration(int subvol_fd);

// Path of inode `ino` relative to the root of the subvolume containing
// `subvol_fd`, without leading or trailing '/'; "" for kSubvolumeRootInode
// (BTRFS_IOC_INO_LOOKUP). Meant for directories; for a file with several hard
// links it names one of them. NotFound if there is no such inode.
absl::StatusOr<std::string> InodePath(int subvol_fd, uint64_t ino);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_TREE_SEARCH_H_
