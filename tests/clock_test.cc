// Clock, RealClock and FakeClock (core/clock.h).

#include "core/clock.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace btrdupd {
namespace {

TEST(ClockTest, RealClockIsASingletonNearAbslNow) {
  Clock* clock = RealClock();
  EXPECT_EQ(clock, RealClock());
  const absl::Time before = absl::Now();
  const absl::Time now = clock->Now();
  const absl::Time after = absl::Now();
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
}

TEST(ClockTest, FakeClockMovesOnlyWhenTold) {
  const absl::Time start = absl::FromUnixSeconds(1700000000);
  FakeClock clock(start);
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.Now(), start);
  clock.Advance(absl::Minutes(5));
  EXPECT_EQ(clock.Now(), start + absl::Minutes(5));
  clock.Set(start - absl::Hours(1));
  EXPECT_EQ(clock.Now(), start - absl::Hours(1));
}

TEST(ClockTest, FakeClockIsSafeToAdvanceFromManyThreads) {
  const absl::Time start = absl::FromUnixSeconds(0);
  FakeClock clock(start);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&clock]() {
      for (int i = 0; i < 1000; ++i) {
        clock.Advance(absl::Seconds(1));
        (void)clock.Now();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(clock.Now(), start + absl::Seconds(4000));
}

}  // namespace
}  // namespace btrdupd
