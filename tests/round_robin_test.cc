// Scheduling logic of the daemon: round-robin turns, sleeping, failure backoff
// (core/round_robin.h), maintenance due times (core/maintenance.h) and processing
// rates (core/rate_meter.h). Pure logic on given times: nothing sleeps.

#include "core/round_robin.h"

#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "core/maintenance.h"
#include "core/rate_meter.h"

namespace btrdupd {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

RoundRobinOptions Options() {
  RoundRobinOptions o;
  o.scan_interval = absl::Seconds(60);
  o.min_retry = absl::Seconds(30);
  o.max_retry = absl::Seconds(240);
  return o;
}

// Opens and change-checks every volume, so all are ready for work.
void OpenAll(RoundRobin& rr, absl::Time now) {
  for (int i = 0; i < rr.volume_count(); ++i) {
    std::optional<RoundRobin::Turn> t = rr.Next(now);
    ASSERT_TRUE(t.has_value());
    ASSERT_EQ(t->kind, RoundRobin::Kind::kOpen);
    rr.ReportOpened(t->volume, now);
  }
  for (int i = 0; i < rr.volume_count(); ++i) {
    std::optional<RoundRobin::Turn> t = rr.Next(now);
    ASSERT_TRUE(t.has_value());
    ASSERT_EQ(t->kind, RoundRobin::Kind::kChangeCheck);
    rr.ReportChangeChecked(t->volume, now);
  }
}

TEST(RoundRobinTest, NewVolumesAreOpenedThenChangeCheckedFirst) {
  RoundRobin rr(Options());
  rr.AddVolume();
  rr.AddVolume();
  std::optional<RoundRobin::Turn> t = rr.Next(kT0);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->volume, 0);
  EXPECT_EQ(t->kind, RoundRobin::Kind::kOpen);
  rr.ReportOpened(0, kT0);
  t = rr.Next(kT0);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->volume, 1);
  EXPECT_EQ(t->kind, RoundRobin::Kind::kOpen);
  rr.ReportOpened(1, kT0);
  t = rr.Next(kT0);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->volume, 0);
  EXPECT_EQ(t->kind, RoundRobin::Kind::kChangeCheck);
}

TEST(RoundRobinTest, BusyVolumeDoesNotStarveTheOther) {
  RoundRobin rr(Options());
  rr.AddVolume();  // "huge": always has more work
  rr.AddVolume();  // "small": three units of work
  ASSERT_NO_FATAL_FAILURE(OpenAll(rr, kT0));
  std::vector<int> served;
  int small_left = 3;
  for (int i = 0; i < 8; ++i) {
    std::optional<RoundRobin::Turn> t = rr.Next(kT0);
    ASSERT_TRUE(t.has_value());
    ASSERT_EQ(t->kind, RoundRobin::Kind::kWork);
    served.push_back(t->volume);
    if (t->volume == 1 && --small_left == 0) {
      rr.ReportIdle(1, kT0, std::nullopt);
    } else {
      rr.ReportWorked(t->volume, kT0);
    }
  }
  EXPECT_EQ(served, (std::vector<int>{0, 1, 0, 1, 0, 1, 0, 0}));
}

TEST(RoundRobinTest, IdleVolumesSleepUntilNextEligibleOrChangeCheck) {
  RoundRobin rr(Options());
  rr.AddVolume();
  rr.AddVolume();
  ASSERT_NO_FATAL_FAILURE(OpenAll(rr, kT0));
  rr.ReportIdle(0, kT0, kT0 + absl::Seconds(20));
  rr.ReportIdle(1, kT0, std::nullopt);
  EXPECT_FALSE(rr.Next(kT0 + absl::Seconds(5)).has_value());
  EXPECT_EQ(rr.NextWake(kT0 + absl::Seconds(5)), kT0 + absl::Seconds(20));

  std::optional<RoundRobin::Turn> t = rr.Next(kT0 + absl::Seconds(20));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->volume, 0);
  EXPECT_EQ(t->kind, RoundRobin::Kind::kWork);
  rr.ReportIdle(0, kT0 + absl::Seconds(20), std::nullopt);
  // Nothing eligible anywhere: the next wake is the change check, scan_interval after
  // the last one.
  EXPECT_EQ(rr.NextWake(kT0 + absl::Seconds(21)), kT0 + absl::Seconds(60));
  t = rr.Next(kT0 + absl::Seconds(60));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->kind, RoundRobin::Kind::kChangeCheck);
}

TEST(RoundRobinTest, IdleWithAPastTimeDoesNotSpin) {
  RoundRobin rr(Options());
  rr.AddVolume();
  ASSERT_NO_FATAL_FAILURE(OpenAll(rr, kT0));
  rr.ReportIdle(0, kT0, kT0 - absl::Seconds(5));
  EXPECT_FALSE(rr.Next(kT0).has_value());
  EXPECT_GT(rr.NextWake(kT0), kT0);
}

TEST(RoundRobinTest, NoVolumesMeansSleepForever) {
  RoundRobin rr(Options());
  EXPECT_FALSE(rr.Next(kT0).has_value());
  EXPECT_EQ(rr.NextWake(kT0), absl::InfiniteFuture());
}

TEST(RoundRobinTest, FailedVolumeIsRetriedWithDoublingBackoffWhileOthersGoOn) {
  RoundRobin rr(Options());
  rr.AddVolume();
  rr.AddVolume();
  ASSERT_NO_FATAL_FAILURE(OpenAll(rr, kT0));
  rr.ReportFailed(0, kT0);  // e.g. unmounted
  EXPECT_TRUE(rr.failed(0));
  EXPECT_EQ(rr.retry_at(0), kT0 + absl::Seconds(30));

  // Volume 1 keeps being served while 0 waits.
  for (int i = 0; i < 3; ++i) {
    std::optional<RoundRobin::Turn> t = rr.Next(kT0 + absl::Seconds(1));
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->volume, 1);
    rr.ReportWorked(1, kT0 + absl::Seconds(1));
  }
  rr.ReportIdle(1, kT0, std::nullopt);

  absl::Time now = kT0 + absl::Seconds(30);
  std::vector<absl::Duration> delays;
  for (int i = 0; i < 5; ++i) {
    std::optional<RoundRobin::Turn> t = rr.Next(now);
    ASSERT_TRUE(t.has_value());
    if (t->volume == 1) {  // volume 1's periodic change checks go on meanwhile
      ASSERT_EQ(t->kind, RoundRobin::Kind::kChangeCheck);
      rr.ReportChangeChecked(1, now);
      rr.ReportIdle(1, now, std::nullopt);
      t = rr.Next(now);
      ASSERT_TRUE(t.has_value());
    }
    ASSERT_EQ(t->volume, 0);
    ASSERT_EQ(t->kind, RoundRobin::Kind::kOpen);
    rr.ReportFailed(0, now);
    delays.push_back(rr.retry_at(0) - now);
    now = rr.retry_at(0);
  }
  EXPECT_EQ(delays, (std::vector<absl::Duration>{absl::Seconds(60), absl::Seconds(120),
                                                 absl::Seconds(240), absl::Seconds(240),
                                                 absl::Seconds(240)}));

  // It comes back: opened, checked, and the backoff starts over after a good pass.
  rr.ReportOpened(0, now);
  EXPECT_FALSE(rr.failed(0));
  EXPECT_EQ(rr.next_change_check(0), now);
  rr.ReportChangeChecked(0, now);
  rr.ReportFailed(0, now);
  EXPECT_EQ(rr.retry_at(0), now + absl::Seconds(30));
}

// NTP steps the wall clock back a day, then forward a month: change checks and retries
// stay at most their own interval away (the injected times play the clock).
TEST(RoundRobinTest, ClockSteppedBackOrForwardKeepsSchedulesSane) {
  RoundRobin rr(Options());  // scan_interval 60 s, retries from 30 s
  rr.AddVolume();
  rr.AddVolume();
  absl::Time now = kT0;
  for (int v = 0; v < 2; ++v) {
    std::optional<RoundRobin::Turn> t = rr.Next(now);
    ASSERT_TRUE(t.has_value());
    ASSERT_EQ(t->kind, RoundRobin::Kind::kOpen);
    if (t->volume == 0) {
      rr.ReportOpened(0, now);
    } else {
      rr.ReportFailed(1, now);  // volume 1 cannot be opened: retried in 30 s
    }
  }
  std::optional<RoundRobin::Turn> t = rr.Next(now);
  ASSERT_TRUE(t.has_value());
  ASSERT_EQ(t->kind, RoundRobin::Kind::kChangeCheck);
  rr.ReportChangeChecked(0, now);
  rr.ReportIdle(0, now, std::nullopt);

  // Back a day: nothing is a day away.
  now = kT0 - absl::Hours(24);
  EXPECT_FALSE(rr.Next(now).has_value());
  EXPECT_LE(rr.NextWake(now), now + absl::Seconds(60));
  EXPECT_LE(rr.next_change_check(0), now + absl::Seconds(60));
  EXPECT_LE(rr.retry_at(1), now + absl::Seconds(30));
  now += absl::Seconds(60);
  bool checked = false, retried = false;
  for (int i = 0; i < 2; ++i) {
    t = rr.Next(now);
    ASSERT_TRUE(t.has_value());
    if (t->volume == 0) {
      EXPECT_EQ(t->kind, RoundRobin::Kind::kChangeCheck);
      rr.ReportChangeChecked(0, now);
      rr.ReportIdle(0, now, std::nullopt);
      checked = true;
    } else {
      EXPECT_EQ(t->kind, RoundRobin::Kind::kOpen);
      rr.ReportFailed(1, now);  // still failing: 60 s next
      retried = true;
    }
  }
  EXPECT_TRUE(checked && retried);

  // Forward a month: both are due at once, and then back to their intervals.
  now += absl::Hours(24 * 30);
  t = rr.Next(now);
  ASSERT_TRUE(t.has_value());
  std::optional<RoundRobin::Turn> u = rr.Next(now);
  ASSERT_TRUE(u.has_value());
  EXPECT_NE(t->volume, u->volume);
}

TEST(RoundRobinTest, AShorterCapKeepsRetriesOfAFullVolumeFrequent) {
  RoundRobin rr(Options());  // min_retry 30 s ... max_retry 240 s
  rr.AddVolume();
  absl::Time now = kT0;
  std::vector<absl::Duration> delays;
  for (int i = 0; i < 4; ++i) {
    rr.ReportFailed(0, now, absl::Seconds(100));
    delays.push_back(rr.retry_at(0) - now);
    now = rr.retry_at(0);
  }
  EXPECT_EQ(delays, (std::vector<absl::Duration>{absl::Seconds(30), absl::Seconds(60),
                                                 absl::Seconds(100), absl::Seconds(100)}));
}

TEST(RoundRobinTest, OpenButAlwaysFailingVolumeKeepsBackingOff) {
  RoundRobin rr(Options());
  rr.AddVolume();
  absl::Time now = kT0;
  rr.Next(now);
  rr.ReportOpened(0, now);
  rr.ReportFailed(0, now);  // the first pass fails
  now = rr.retry_at(0);
  rr.Next(now);
  rr.ReportOpened(0, now);  // reopening works ...
  rr.ReportFailed(0, now);  // ... but the pass fails again
  EXPECT_EQ(rr.retry_at(0) - now, absl::Seconds(60));
}

TEST(RoundRobinTest, RequestChangeCheckMakesItDueNow) {
  RoundRobin rr(Options());
  rr.AddVolume();
  ASSERT_NO_FATAL_FAILURE(OpenAll(rr, kT0));
  rr.ReportIdle(0, kT0, std::nullopt);
  absl::Time now = kT0 + absl::Seconds(10);
  EXPECT_FALSE(rr.Next(now).has_value());
  rr.RequestChangeCheck(0, now);
  std::optional<RoundRobin::Turn> t = rr.Next(now);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->kind, RoundRobin::Kind::kChangeCheck);
}

TEST(MaintenanceTest, FreshDatabaseCountsFromWhenTheDaemonFirstServedIt) {
  MaintenanceTimes times;
  times.since = kT0;
  MaintenancePolicy policy;
  policy.vacuum_interval = absl::Hours(24 * 30);
  policy.dedupe_reset_interval = absl::Hours(24 * 7);
  EXPECT_EQ(DueMaintenance(times, policy, kT0), MaintenanceTask::kNone);
  EXPECT_EQ(NextDedupeReset(times, policy), kT0 + absl::Hours(24 * 7));
  EXPECT_EQ(NextVacuum(times, policy), kT0 + absl::Hours(24 * 30));
  EXPECT_EQ(NextMaintenance(times, policy), kT0 + absl::Hours(24 * 7));
  EXPECT_EQ(DueMaintenance(times, policy, kT0 + absl::Hours(24 * 7)),
            MaintenanceTask::kDedupeReset);
}

TEST(MaintenanceTest, DueFromTheLastRunAndResetGoesBeforeVacuum) {
  MaintenanceTimes times;
  times.since = kT0 - absl::Hours(24 * 365);
  times.last_vacuum = kT0 - absl::Hours(24 * 31);
  times.last_dedupe_reset = kT0 - absl::Hours(24 * 31);
  MaintenancePolicy policy;  // 30 days each
  EXPECT_EQ(DueMaintenance(times, policy, kT0), MaintenanceTask::kDedupeReset);
  times.last_dedupe_reset = kT0;
  EXPECT_EQ(DueMaintenance(times, policy, kT0), MaintenanceTask::kVacuum);
  times.last_vacuum = kT0;
  EXPECT_EQ(DueMaintenance(times, policy, kT0), MaintenanceTask::kNone);
  EXPECT_EQ(NextVacuum(times, policy), kT0 + absl::Hours(24 * 30));
}

TEST(MaintenanceTest, ZeroIntervalMeansNever) {
  MaintenanceTimes times;
  times.since = kT0 - absl::Hours(24 * 365);
  MaintenancePolicy policy;
  policy.vacuum_interval = absl::ZeroDuration();
  policy.dedupe_reset_interval = absl::ZeroDuration();
  EXPECT_EQ(DueMaintenance(times, policy, kT0), MaintenanceTask::kNone);
  EXPECT_EQ(NextMaintenance(times, policy), absl::InfiniteFuture());
}

TEST(MaintenanceTest, AFirstPassOverManyFilesIsFollowedByAVacuum) {
  const int64_t n = kVacuumAfterFilesAdded;
  EXPECT_TRUE(VacuumAfterPass(/*full_scan=*/true, n, n));          // a first pass
  EXPECT_TRUE(VacuumAfterPass(/*full_scan=*/true, 2 * n, n));      // the volume doubled
  EXPECT_FALSE(VacuumAfterPass(/*full_scan=*/true, 2 * n + 1, n));  // less than half new
  EXPECT_FALSE(VacuumAfterPass(/*full_scan=*/true, n - 1, n - 1));  // too few to matter
  EXPECT_FALSE(VacuumAfterPass(/*full_scan=*/false, n, n));         // incremental
}

TEST(MaintenanceTest, ADatabaseAQuarterFreeIsVacuumed) {
  VolumeIndex::FileSpace space;
  space.bytes = 4 * kVacuumFreeBytes;
  space.free_bytes = kVacuumFreeBytes;
  EXPECT_TRUE(VacuumForFreePages(space));
  space.free_bytes = kVacuumFreeBytes - 4096;  // under a quarter
  EXPECT_FALSE(VacuumForFreePages(space));
  space.bytes = kVacuumFreeBytes;  // all free, but a small file
  space.free_bytes = kVacuumFreeBytes / 2;
  EXPECT_FALSE(VacuumForFreePages(space));
}

TEST(MaintenanceTest, MetaTimesRoundTripAndBadValuesNameTheKey) {
  absl::StatusOr<absl::Time> t = ParseMetaTime("k", FormatMetaTime(kT0));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, kT0);
  absl::StatusOr<absl::Time> bad = ParseMetaTime("last_vacuum", "yesterday");
  EXPECT_TRUE(absl::IsDataLoss(bad.status())) << bad.status();
  EXPECT_NE(bad.status().message().find("last_vacuum"), std::string::npos);
}

TEST(RateMeterTest, LastMinuteForgetsOldWorkSinceStartDoesNot) {
  RateMeter meter(kT0);
  meter.Add(kT0 + absl::Seconds(1), 10, 10'000);
  meter.Add(kT0 + absl::Seconds(2), 20, 20'000);
  Rate early = meter.LastMinute(kT0 + absl::Seconds(10));
  EXPECT_DOUBLE_EQ(early.files_per_second, 3.0);  // 30 files over 10 s
  EXPECT_DOUBLE_EQ(early.bytes_per_second, 3000.0);

  absl::Time later = kT0 + absl::Seconds(120);
  Rate minute = meter.LastMinute(later);
  EXPECT_DOUBLE_EQ(minute.files_per_second, 0.0);
  Rate overall = meter.SinceStart(later);
  EXPECT_DOUBLE_EQ(overall.files_per_second, 30.0 / 120);
  EXPECT_EQ(meter.total_files(), 30);
  EXPECT_EQ(meter.total_bytes(), 30'000u);

  meter.Add(later, 60, 600);
  Rate now = meter.LastMinute(later);
  EXPECT_DOUBLE_EQ(now.files_per_second, 1.0);
  EXPECT_DOUBLE_EQ(now.bytes_per_second, 10.0);
}

}  // namespace
}  // namespace btrdupd
