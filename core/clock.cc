#include "core/clock.h"

namespace btrdupd {
namespace {

class RealClockImpl : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
};

}  // namespace

std::optional<absl::Time> FiniteTime(absl::Time t) {
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast()) return std::nullopt;
  return t;
}

Clock* RealClock() {
  static Clock* const clock = new RealClockImpl();
  return clock;
}

FakeClock::FakeClock(absl::Time start) : now_(start) {}

absl::Time FakeClock::Now() {
  absl::MutexLock lock(&mu_);
  return now_;
}

void FakeClock::Set(absl::Time t) {
  absl::MutexLock lock(&mu_);
  now_ = t;
}

void FakeClock::Advance(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  now_ += d;
}

}  // namespace btrdupd
