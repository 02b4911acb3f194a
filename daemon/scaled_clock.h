// ScaledClock: a clock that runs `scale` times faster than the wall clock, for tests and
// benchmarks of the daemon only (`--test-time-scale`).
//
// The daemon's waits are minutes to days (initial_wait_minutes, backoff, scan interval,
// maintenance intervals). Tests cannot wait that long, and shortening each setting
// separately would test different code from what users run. Instead the daemon's whole
// notion of time runs faster: with scale 60, one real second is one minute for the
// scanner, the engine, the schedules and the daemon loop alike, so a file with
// initial_wait_minutes=1 becomes eligible about one real second after its last change,
// and backoff doubles exactly as in production. Times written to the database are then
// not real times; never use a scale other than 1 on real data.
//
// Now() = start + (wall - start) * scale + offset. A file's times are mapped the same way
// without the offset (FromWallTime), so a file written one real second before a change
// check looks `scale` seconds old to it. The offset (`--test-clock-offset`, both modes)
// makes every file look that much older: a one-shot test sees files it wrote a moment
// ago as written minutes ago without waiting. ToRealDuration() converts a span of this
// clock's time into wall time (for poll timeouts). Thread-safe (no mutable state).

#ifndef BTRDUPD_DAEMON_SCALED_CLOCK_H_
#define BTRDUPD_DAEMON_SCALED_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/clock.h"

namespace btrdupd {

class ScaledClock : public Clock {
 public:
  // REQUIRES: scale > 0.
  explicit ScaledClock(double scale, absl::Duration offset = absl::ZeroDuration())
      : scale_(scale), offset_(offset), start_(absl::Now()) {}

  absl::Time Now() override { return FromWallTime(absl::Now()) + offset_; }

  absl::Time FromWallTime(absl::Time wall) override {
    if (scale_ == 1.0) return wall;
    return start_ + (wall - start_) * scale_;
  }

  absl::Duration ToRealDuration(absl::Duration d) const {
    if (scale_ == 1.0 || d == absl::InfiniteDuration()) return d;
    return d / scale_;
  }

  double scale() const { return scale_; }

 private:
  const double scale_;
  const absl::Duration offset_;
  const absl::Time start_;
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_SCALED_CLOCK_H_
