// Clock: where core/ logic gets "now" from, so tests control time instead of sleeping.
//
// Contract: Now() returns the current time; a Clock may be called from any thread.
// FromWallTime() maps a wall-clock instant (a file's mtime or ctime) onto this clock, so
// "how long ago did this file change" is answered in the clock's own time; the identity
// for every clock but the daemon's test clock (daemon/scaled_clock.h).
// RealClock() is the process-wide wall clock (never deleted). FakeClock starts at a
// given instant and only moves when a test calls Set() or Advance(); it is thread-safe,
// so a test may advance it while another thread reads it.

#ifndef BTRDUPD_CORE_CLOCK_H_
#define BTRDUPD_CORE_CLOCK_H_

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace btrdupd {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;
  virtual absl::Time FromWallTime(absl::Time wall) { return wall; }
};

// The real wall clock (absl::Now()). A singleton that lives for the whole process.
Clock* RealClock();

// `t`, or nullopt for the infinite past or future ("never" in a schedule or a reply).
std::optional<absl::Time> FiniteTime(absl::Time t);

// A clock that stands still until told to move.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start);

  absl::Time Now() override;
  void Set(absl::Time t);
  void Advance(absl::Duration d);

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_CLOCK_H_
