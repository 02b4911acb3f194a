// Clock steps (NTP stepping the wall clock back a day or forward a month) against the
// times btrdupd has stored: stability waits and backoff (next_eligible in the index),
// the maintenance times (VACUUM, dedupe-state reset) and the full-scan schedule. With
// the injected clock (core/clock.h) on the real SQLite index, a fake filesystem and a
// fake backend: a step back delays nothing by the size of the step, a step forward
// makes due what is due, once. The daemon's own schedules: tests/round_robin_test.cc.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/dedupe_engine.h"
#include "core/index.h"
#include "core/maintenance.h"
#include "core/scan_policy.h"
#include "core/stability.h"
#include "tests/testing/fake_file_access.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using testing::FakeDedupeBackend;
using testing::FakeFileAccess;

constexpr char kRoot[] = "/vol";
constexpr uint64_t kTop = 5;
const absl::Time kT0 = absl::FromUnixSeconds(1700000000);  // 2023-11-14 22:13:20 UTC
const absl::Duration kDay = absl::Hours(24);
const absl::Duration kMonth = absl::Hours(24 * 30);

class ClockStepTest : public ::testing::Test {
 protected:
  ClockStepTest() : clock_(kT0), backend_(&fs_) {}

  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    const std::string dir =
        absl::StrCat(tmp ? tmp : "/tmp", "/clock_step_",
                     ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_",
                     getpid());
    ASSERT_EQ(system(absl::StrCat("rm -rf '", dir, "' && mkdir -p '", dir, "'").c_str()), 0);
    ASSERT_OK_AND_ASSIGN(index_, VolumeIndex::Open(dir + "/btrdupd.db"));
    SubvolumeRecord top;
    top.id = kTop;
    ASSERT_OK(index_->UpsertSubvolume(top));
    ASSERT_OK(index_->EnsureDir("", kTop, 256).status());
  }

  // Writes `name` into the fake filesystem and has the index observe it at the clock's
  // now, as changed just now (`generation` tells a change apart).
  int64_t Observe(const std::string& name, const std::string& contents, uint64_t ino,
                  uint64_t generation = 7) {
    const std::string path = absl::StrCat(kRoot, "/", name);
    fs_.AddFile(path, contents, ino, 1000 + generation);
    FileObservation seen;
    seen.subvol_id = kTop;
    seen.ino = ino;
    seen.size = contents.size();
    seen.mtime_ns = fs_.file(path).mtime_ns;
    seen.generation = generation;
    seen.last_change = clock_.Now();
    absl::StatusOr<int64_t> id =
        index_->ObserveFile(1, name, seen, clock_.Now(), ToStabilityPolicy(config_));
    EXPECT_OK(id);
    return id.ok() ? *id : 0;
  }

  FileRecord Get(int64_t id) {
    absl::StatusOr<std::optional<FileRecord>> f = index_->GetFile(id);
    EXPECT_TRUE(f.ok() && f->has_value()) << "no file " << id;
    return f.ok() && f->has_value() ? **f : FileRecord();
  }

  // One pass of the engine; returns its last result (kIdle).
  StepResult Pass(DedupeEngine& engine) {
    absl::StatusOr<StepResult> last = engine.RunUntilIdle({});
    EXPECT_OK(last);
    return last.ok() ? *last : StepResult();
  }

  std::unique_ptr<DedupeEngine> Engine() {
    return std::make_unique<DedupeEngine>(index_.get(), &fs_, &backend_, config_, &clock_,
                                          kRoot, EngineOptions());
  }

  // Times are stored in whole seconds.
  static absl::Time Stored(absl::Time t) {
    return absl::FromUnixSeconds(absl::ToUnixSeconds(t));
  }

  FakeClock clock_;
  FakeFileAccess fs_;
  FakeDedupeBackend backend_;
  VolumeConfig config_;  // initial wait 5 min, backoff up to 72 h
  std::unique_ptr<VolumeIndex> index_;
};

TEST_F(ClockStepTest, WaitsStoredBeforeAStepBackAreBroughtBackToTheirOwnLength) {
  const StabilityPolicy policy = ToStabilityPolicy(config_);
  const int64_t fresh = Observe("fresh", std::string(20000, 'a'), 11);
  // Changed twice while waiting: backoff level 2, a 20-minute wait.
  int64_t backing_off = Observe("busy", std::string(30000, 'b'), 12, 1);
  Observe("busy", std::string(30000, 'b'), 12, 2);
  backing_off = Observe("busy", std::string(30000, 'b'), 12, 3);
  ASSERT_EQ(Get(backing_off).backoff_level, 2);
  ASSERT_EQ(Get(backing_off).next_eligible, Stored(kT0 + absl::Minutes(20)));
  // Nothing to bring back while the clock runs on.
  ASSERT_OK_AND_ASSIGN(int64_t unchanged, index_->ClampStabilityWaits(kT0, policy));
  EXPECT_EQ(unchanged, 0);

  const absl::Time back = kT0 - kDay;
  ASSERT_OK_AND_ASSIGN(int64_t clamped, index_->ClampStabilityWaits(back, policy));
  EXPECT_EQ(clamped, 2);
  EXPECT_EQ(Get(fresh).next_eligible, Stored(back + absl::Minutes(5)));
  EXPECT_EQ(Get(backing_off).next_eligible, Stored(back + absl::Minutes(20)));
  EXPECT_EQ(Get(backing_off).backoff_level, 2) << "the level is kept";
  ASSERT_OK_AND_ASSIGN(int64_t again, index_->ClampStabilityWaits(back, policy));
  EXPECT_EQ(again, 0);
}

// A pair in its 5-minute wait and a pair backing off (20 minutes) when the clock steps
// back a day: each is deduped once its own wait has passed on the new clock, not a day
// later.
TEST_F(ClockStepTest, AStepBackADayDelaysNoWaitOrBackoffByADay) {
  const int64_t a1 = Observe("a1", std::string(20000, 'a'), 11);
  const int64_t a2 = Observe("a2", std::string(20000, 'a'), 12);
  Observe("b1", std::string(30000, 'b'), 21);
  Observe("b2", std::string(30000, 'b'), 22);
  for (uint64_t gen : {8, 9}) {
    Observe("b1", std::string(30000, 'b'), 21, gen);
    Observe("b2", std::string(30000, 'b'), 22, gen);
  }
  auto engine = Engine();
  EXPECT_EQ(Pass(*engine).next_eligible, Stored(kT0 + absl::Minutes(5)));

  clock_.Set(kT0 - kDay);
  StepResult idle = Pass(*engine);
  EXPECT_EQ(idle.next_eligible, Stored(clock_.Now() + absl::Minutes(5)))
      << "the next wait ends 5 minutes from the new now, not a day later";
  EXPECT_TRUE(backend_.calls().empty());

  clock_.Advance(absl::Minutes(5));
  idle = Pass(*engine);
  EXPECT_EQ(Get(a2).dedupe_state, DedupeState::kDeduped);
  EXPECT_EQ(Get(a2).reference_id, a1);
  EXPECT_EQ(idle.next_eligible, Stored(kT0 - kDay + absl::Minutes(20)))
      << "the backing-off pair waits its 20 minutes from the step";

  clock_.Advance(absl::Minutes(15));
  Pass(*engine);
  EXPECT_EQ(backend_.calls().size(), 2u);
  absl::StatusOr<std::vector<FileRecord>> b = index_->FilesOfSize(30000);
  ASSERT_OK(b);
  int deduped = 0;
  for (const FileRecord& f : *b) deduped += f.dedupe_state == DedupeState::kDeduped;
  EXPECT_EQ(deduped, 1);
}

// A month forward: every wait is over, so one pass does all that is due, reading each
// file once; the next pass finds nothing to do (no storm of repeated work).
TEST_F(ClockStepTest, AMonthForwardMakesDueWhatIsDueOnce) {
  for (int i = 0; i < 3; ++i) {
    const std::string contents(20000 + 4096 * i, static_cast<char>('a' + i));
    Observe(absl::StrCat("p", i, "a"), contents, 100 + 2 * i);
    Observe(absl::StrCat("p", i, "b"), contents, 101 + 2 * i);
  }
  auto engine = Engine();
  Pass(*engine);
  ASSERT_TRUE(backend_.calls().empty());

  clock_.Advance(kMonth);
  StepResult idle = Pass(*engine);
  EXPECT_EQ(idle.next_eligible, absl::InfiniteFuture());
  EXPECT_EQ(backend_.calls().size(), 3u);
  const uint64_t read = fs_.bytes_read();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(fs_.bytes_read(absl::StrCat(kRoot, "/p", i, "b")), 20000u + 4096 * i);
  }
  Pass(*engine);
  EXPECT_EQ(backend_.calls().size(), 3u);
  EXPECT_EQ(fs_.bytes_read(), read);
  ASSERT_OK_AND_ASSIGN(IndexStats stats, index_->Stats(clock_.Now()));
  EXPECT_EQ(stats.files_deduped, 3);
}

TEST_F(ClockStepTest, MaintenanceRecordedBeforeAStepBackIsDueOneIntervalFromNow) {
  const MaintenancePolicy policy;  // 30 days each
  ASSERT_OK(LoadMaintenanceTimes(*index_, kT0).status());
  ASSERT_OK(RunMaintenance(*index_, MaintenanceTask::kDedupeReset, kT0));
  ASSERT_OK(RunMaintenance(*index_, MaintenanceTask::kVacuum, kT0));

  const absl::Time back = kT0 - kDay;
  ASSERT_OK_AND_ASSIGN(MaintenanceTimes times, LoadMaintenanceTimes(*index_, back));
  EXPECT_EQ(NextVacuum(times, policy), back + policy.vacuum_interval);
  EXPECT_EQ(NextDedupeReset(times, policy), back + policy.dedupe_reset_interval);
  EXPECT_EQ(DueMaintenance(times, policy, back), MaintenanceTask::kNone);

  // A month forward: each job once, then nothing for another interval.
  const absl::Time forward = kT0 + kMonth + kDay;
  std::vector<MaintenanceTask> ran;
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(times, LoadMaintenanceTimes(*index_, forward));
    const MaintenanceTask task = DueMaintenance(times, policy, forward);
    if (task == MaintenanceTask::kNone) break;
    ran.push_back(task);
    ASSERT_OK(RunMaintenance(*index_, task, forward));
  }
  EXPECT_EQ(ran, (std::vector<MaintenanceTask>{MaintenanceTask::kDedupeReset,
                                                MaintenanceTask::kVacuum}));
  EXPECT_EQ(NextMaintenance(times, policy), forward + absl::Hours(24 * 30));
}

TEST_F(ClockStepTest, FullScanScheduledBeforeAStepBackIsNotPutOffByTheStep) {
  VolumeConfig config;  // full_scan_hour 2, at most one per 24 h
  FullScanState state;
  state.ever_completed = true;
  state.wanted = true;
  state.last_full = kT0;     // 22:13 UTC
  state.wanted_since = kT0;  // a generation gap seen then
  const absl::TimeZone utc = absl::UTCTimeZone();
  // Without a step: the first 02:00 at least 24 h after the last full scan.
  const absl::Time normal = NextFullScanTime(state, config, kT0, utc);
  EXPECT_EQ(normal, kT0 + absl::Hours(24) + absl::Minutes(226) + absl::Seconds(40));

  const absl::Time back = kT0 - kDay;
  const absl::Time next = NextFullScanTime(state, config, back, utc);
  EXPECT_EQ(next, normal - kDay) << "24 h after the new now, not after the recorded time";
  EXPECT_GT(MissedFullScanTime(state, config, back, utc), back) << "not due yet";

  const absl::Time forward = kT0 + kMonth;
  EXPECT_LE(MissedFullScanTime(state, config, forward, utc), forward) << "due at once";
}

}  // namespace
}  // namespace btrdupd
