#include "ioctl/fiemap.h"

#include <errno.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>  // TEMP_FAILURE_RETRY

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {
namespace {

// Extents fetched per call (~14 KiB buffer).
constexpr uint32_t kExtentsPerCall = 256;

Extent FromKernel(const fiemap_extent& fe) {
  Extent e;
  e.logical = fe.fe_logical;
  e.physical = fe.fe_physical;
  e.length = fe.fe_length;
  e.last = (fe.fe_flags & FIEMAP_EXTENT_LAST) != 0;
  e.shared = (fe.fe_flags & FIEMAP_EXTENT_SHARED) != 0;
  e.inline_data = (fe.fe_flags & FIEMAP_EXTENT_DATA_INLINE) != 0;
  e.encoded = (fe.fe_flags & FIEMAP_EXTENT_ENCODED) != 0;
  e.delalloc = (fe.fe_flags & FIEMAP_EXTENT_DELALLOC) != 0;
  e.unwritten = (fe.fe_flags & FIEMAP_EXTENT_UNWRITTEN) != 0;
  e.unknown = (fe.fe_flags & FIEMAP_EXTENT_UNKNOWN) != 0;
  return e;
}

bool Comparable(const Extent& e) { return !e.inline_data && !e.delalloc && !e.unknown; }

}  // namespace

absl::StatusOr<std::vector<Extent>> ReadExtents(int fd) {
  const size_t bytes = sizeof(fiemap) + kExtentsPerCall * sizeof(fiemap_extent);
  std::vector<uint64_t> storage((bytes + sizeof(uint64_t) - 1) / sizeof(uint64_t));
  auto* map = reinterpret_cast<fiemap*>(storage.data());

  std::vector<Extent> extents;
  uint64_t start = 0;  // first byte not yet covered
  for (;;) {
    std::fill(storage.begin(), storage.end(), 0);
    map->fm_start = start;
    map->fm_length = FIEMAP_MAX_OFFSET - start;
    map->fm_flags = FIEMAP_FLAG_SYNC;
    map->fm_extent_count = kExtentsPerCall;
    int rc = TEMP_FAILURE_RETRY(ioctl(fd, FS_IOC_FIEMAP, map));
    if (rc < 0) {
      const int err = errno;
      return ErrnoToStatus(err, absl::StrCat("FIEMAP ", DescribeFd(fd)));
    }
    if (map->fm_mapped_extents == 0) break;

    const uint64_t previous_start = start;
    bool saw_last = false;
    for (uint32_t i = 0; i < map->fm_mapped_extents; ++i) {
      Extent e = FromKernel(map->fm_extents[i]);
      saw_last = saw_last || e.last;
      // A continuation may repeat the extent that straddles `start`.
      if (e.logical + e.length <= start) continue;
      if (e.logical < start) {
        const uint64_t skip = start - e.logical;
        e.logical += skip;
        e.length -= skip;
        if (!e.encoded && !e.inline_data) e.physical += skip;
      }
      start = e.logical + e.length;
      extents.push_back(e);
    }
    if (saw_last || map->fm_mapped_extents < kExtentsPerCall) break;
    if (start == previous_start) {
      return absl::InternalError(
          absl::StrCat("FIEMAP ", DescribeFd(fd), ": no progress at offset ", start));
    }
  }
  return extents;
}

bool SharesAllExtents(absl::Span<const Extent> a, absl::Span<const Extent> b) {
  if (a.empty() || b.empty()) return false;
  if (!std::all_of(a.begin(), a.end(), Comparable) ||
      !std::all_of(b.begin(), b.end(), Comparable)) {
    return false;
  }
  // Walk both lists offset by offset; `used_*` is how much of the current
  // extent is already matched.
  size_t i = 0;
  size_t j = 0;
  uint64_t used_a = 0;
  uint64_t used_b = 0;
  while (i < a.size() && j < b.size()) {
    const Extent& x = a[i];
    const Extent& y = b[j];
    if (x.logical + used_a != y.logical + used_b) return false;  // a hole in one
    if (x.encoded || y.encoded) {
      if (used_a != 0 || used_b != 0 || x.encoded != y.encoded || x.length != y.length ||
          x.physical != y.physical) {
        return false;
      }
      ++i;
      ++j;
      continue;
    }
    if (x.physical + used_a != y.physical + used_b) return false;
    const uint64_t step = std::min(x.length - used_a, y.length - used_b);
    used_a += step;
    used_b += step;
    if (used_a == x.length) {
      ++i;
      used_a = 0;
    }
    if (used_b == y.length) {
      ++j;
      used_b = 0;
    }
  }
  return i == a.size() && j == b.size();
}

absl::StatusOr<bool> SharesAllExtents(int fd_a, int fd_b) {
  absl::StatusOr<std::vector<Extent>> a = ReadExtents(fd_a);
  if (!a.ok()) return a.status();
  absl::StatusOr<std::vector<Extent>> b = ReadExtents(fd_b);
  if (!b.ok()) return b.status();
  return SharesAllExtents(*a, *b);
}

absl::StatusOr<SharingSummary> SummarizeSharing(int fd) {
  absl::StatusOr<std::vector<Extent>> extents = ReadExtents(fd);
  if (!extents.ok()) return extents.status();
  SharingSummary summary;
  for (const Extent& e : *extents) {
    ++summary.extent_count;
    summary.mapped_bytes += e.length;
    if (e.shared) summary.shared_bytes += e.length;
    if (!Comparable(e)) summary.comparable = false;
  }
  return summary;
}

}  // namespace btrdupd
