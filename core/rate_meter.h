// RateMeter: files and bytes processed per second, over the last minute and since start.
//
// The daemon adds what each unit of work processed; the status socket reports both
// rates. The last-minute rate uses 60 one-second buckets, so memory is constant however
// long the daemon runs. Pure logic: every call takes the time it is about.
//
// Thread-compatible.

#ifndef BTRDUPD_CORE_RATE_METER_H_
#define BTRDUPD_CORE_RATE_METER_H_

#include <array>
#include <cstdint>

#include "absl/time/time.h"

namespace btrdupd {

struct Rate {
  double files_per_second = 0;
  double bytes_per_second = 0;
};

class RateMeter {
 public:
  explicit RateMeter(absl::Time start) : start_(start) {}

  // Records `files` files of `bytes` bytes processed at `now`.
  // REQUIRES: `now` is not earlier than any time given before (the clock may stand
  // still; an earlier time is counted in the current second).
  void Add(absl::Time now, int64_t files, uint64_t bytes);

  // Over the 60 seconds up to `now` (or since start, if that is shorter).
  Rate LastMinute(absl::Time now) const;
  // Over everything since start.
  Rate SinceStart(absl::Time now) const;

  int64_t total_files() const { return total_files_; }
  uint64_t total_bytes() const { return total_bytes_; }

 private:
  static constexpr int kBuckets = 60;
  struct Bucket {
    int64_t second = -1;  // Unix second this bucket holds, -1 if none
    int64_t files = 0;
    uint64_t bytes = 0;
  };

  absl::Time start_;
  std::array<Bucket, kBuckets> buckets_;
  int64_t latest_second_ = 0;
  int64_t total_files_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_RATE_METER_H_
