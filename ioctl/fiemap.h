// FIEMAP: where a file's bytes live on disk, and whether two files share them.
//
// ReadExtents asks with FIEMAP_FLAG_SYNC, so dirty pages are written first
// and extents are real, not delayed allocations. Holes are not reported.
//
// Thread-safe: no shared state. The answer is a snapshot; a concurrent
// writer can change the file right after.

#ifndef BTRDUPD_IOCTL_FIEMAP_H_
#define BTRDUPD_IOCTL_FIEMAP_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace btrdupd {

// One mapped range of a file, as FIEMAP reports it.
struct Extent {
  uint64_t logical = 0;   // offset in the file
  uint64_t physical = 0;  // btrfs logical disk address; for encoded extents the
                          // start of the whole compressed extent
  uint64_t length = 0;    // bytes of the file (may run past EOF to a block end)
  bool last = false;       // the file's last extent
  bool shared = false;     // referenced more than once (other file, snapshot, clone)
  bool inline_data = false;  // stored inside the metadata; no physical address
  bool encoded = false;    // compressed: physical is not linear in logical
  bool delalloc = false;   // not yet allocated (only without sync)
  bool unwritten = false;  // preallocated, reads as zeroes
  bool unknown = false;    // location unknown
};

// All extents of the file, in logical order.
absl::StatusOr<std::vector<Extent>> ReadExtents(int fd);

// Whether two extent lists map every logical offset to the same physical
// place: equal coverage (same holes), same physical address at each offset,
// non-empty, and no extent inline, delalloc or unknown. Extent boundaries may
// differ (after dedupe btrfs often splits one file's extents differently
// from the other's). Encoded (compressed) extents must match as whole
// extents: logical, length and physical equal.
bool SharesAllExtents(absl::Span<const Extent> a, absl::Span<const Extent> b);

// ReadExtents on both and SharesAllExtents. True means deduping the two files
// against each other would change nothing.
absl::StatusOr<bool> SharesAllExtents(int fd_a, int fd_b);

// How much of one file is stored in extents marked shared.
struct SharingSummary {
  uint64_t extent_count = 0;
  uint64_t mapped_bytes = 0;  // sum of extent lengths
  uint64_t shared_bytes = 0;  // sum of lengths of extents flagged shared
  bool comparable = true;     // no inline, delalloc or unknown extent
};

absl::StatusOr<SharingSummary> SummarizeSharing(int fd);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_FIEMAP_H_
