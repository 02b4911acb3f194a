#include "core/rate_meter.h"

#include <algorithm>

namespace btrdupd {

void RateMeter::Add(absl::Time now, int64_t files, uint64_t bytes) {
  int64_t second = std::max(absl::ToUnixSeconds(now), latest_second_);
  latest_second_ = second;
  Bucket& b = buckets_[static_cast<size_t>(second % kBuckets)];
  if (b.second != second) b = Bucket{second, 0, 0};
  b.files += files;
  b.bytes += bytes;
  total_files_ += files;
  total_bytes_ += bytes;
}

Rate RateMeter::LastMinute(absl::Time now) const {
  const int64_t now_second = absl::ToUnixSeconds(now);
  int64_t files = 0;
  uint64_t bytes = 0;
  for (const Bucket& b : buckets_) {
    if (b.second >= 0 && b.second > now_second - kBuckets && b.second <= now_second) {
      files += b.files;
      bytes += b.bytes;
    }
  }
  double window = std::min(absl::ToDoubleSeconds(now - start_), double{kBuckets});
  if (window < 1) window = 1;
  return Rate{files / window, bytes / window};
}

Rate RateMeter::SinceStart(absl::Time now) const {
  double elapsed = absl::ToDoubleSeconds(now - start_);
  if (elapsed < 1) elapsed = 1;
  return Rate{total_files_ / elapsed, static_cast<double>(total_bytes_) / elapsed};
}

}  // namespace btrdupd
