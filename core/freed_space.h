// What a dedupe really gives back: "shared" versus "freed".
//
// Deduping a destination against a reference makes the destination's bytes *shared*
// (they now lie on the reference's extents): that figure is size * files. The space
// *freed* is smaller when the destination's old extents are still referred to by
// something else - a snapshot's copy, a reflink, another file - since btrfs frees an
// extent only when its last reference goes. The engine takes, before each backend call,
// the on-disk extents every destination holds (FileAccess::HeldExtents: FIEMAP's SHARED
// flag per extent, and for a shared one the inodes referring to it, from a backref
// walk); after the verified outcomes, FreedBytes counts what no surviving reference
// holds. An extent shared only among destinations of the same batch (a file and its
// snapshot copy deduped together, two reflinked copies) is freed when all of them were
// deduped; one shared with anything else is not.
//
// Pure: no I/O.

#ifndef BTRDUPD_CORE_FREED_SPACE_H_
#define BTRDUPD_CORE_FREED_SPACE_H_

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"

namespace btrdupd {

// An inode of one subvolume: what a backref walk names.
struct InodeKey {
  uint64_t subvol = 0;
  uint64_t ino = 0;

  friend bool operator==(const InodeKey& a, const InodeKey& b) {
    return a.subvol == b.subvol && a.ino == b.ino;
  }
  template <typename H>
  friend H AbslHashValue(H h, const InodeKey& k) {
    return H::combine(std::move(h), k.subvol, k.ino);
  }
};

// One on-disk extent a file holds.
struct HeldExtent {
  uint64_t bytenr = 0;      // start on disk: the extent's identity
  uint64_t disk_bytes = 0;  // allocated size (the whole extent, compressed size if so)
  // Referred to by anything but this file, or by this file more than once.
  bool shared = false;
  // For a shared extent: every inode referring to it (repeats allowed), when known.
  // Unknown (nullopt) counts as held by something else: not freed.
  std::optional<std::vector<InodeKey>> referrers;
};

// One destination that was deduped (verified) and the extents it held before.
struct DedupedHolder {
  InodeKey inode;
  std::vector<HeldExtent> extents;
};

// Bytes freed once every holder refers to its reference's extents instead of its own:
// each distinct extent held by a holder that is not shared, or whose referrers are all
// holders, counted once.
uint64_t FreedBytes(const std::vector<DedupedHolder>& deduped);

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_FREED_SPACE_H_
