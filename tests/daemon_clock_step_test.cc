// The daemon's view of one volume (daemon/daemon_volume.h) on a real btrfs, driven by
// an injected clock (core/clock.h) that is stepped back a day while the volume sleeps
// through a stability wait: the next change check notices the step and the volume
// wakes when the wait ends on the new clock, not a day later. The engine and index
// level of clock steps: tests/clock_step_test.cc.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <optional>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "daemon/daemon_volume.h"
#include "daemon/volume_session.h"
#include "ioctl/fiemap.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::BtrfsTest;
using ::btrdupd::testing::WritePatternFile;

class DaemonClockStepTest : public BtrfsTest {
 protected:
  bool Shared() {
    UniqueFd a(open(Path("a").c_str(), O_RDONLY | O_CLOEXEC));
    UniqueFd b(open(Path("b").c_str(), O_RDONLY | O_CLOEXEC));
    absl::StatusOr<bool> shared = SharesAllExtents(a.get(), b.get());
    return shared.ok() && *shared;
  }

  // Work units until the volume goes idle; returns when it wants to work next.
  static std::optional<absl::Time> WorkUntilIdle(DaemonVolume& volume) {
    for (int i = 0; i < 100; ++i) {
      absl::StatusOr<DaemonVolume::UnitResult> r = volume.WorkUnit();
      EXPECT_OK(r);
      if (!r.ok()) return std::nullopt;
      if (!r->worked) return r->next_work;
    }
    ADD_FAILURE() << "never went idle";
    return std::nullopt;
  }
};

TEST_F(DaemonClockStepTest, AVolumeAsleepWhenTheClockStepsBackWakesAfterItsWaitNotTheStep) {
  ASSERT_TRUE(WritePatternFile(Path("a"), 256 * 1024, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path("b"), 256 * 1024, 1).ok());
  sync();
  FakeClock clock(absl::Now());  // the files changed just now: 5 minutes to wait
  DaemonVolume volume(mount_path(), SessionOptions(), &clock);
  ASSERT_OK(volume.Open());
  ASSERT_OK(volume.ChangeCheck([] { return false; }).status());
  std::optional<absl::Time> next = WorkUntilIdle(volume);
  ASSERT_TRUE(next.has_value());
  EXPECT_LE(*next, clock.Now() + absl::Minutes(5));
  EXPECT_FALSE(Shared());

  clock.Set(clock.Now() - absl::Hours(24));
  absl::StatusOr<DaemonVolume::UnitResult> checked =
      volume.ChangeCheck([] { return false; });
  ASSERT_OK(checked);
  EXPECT_TRUE(checked->changes_found) << "a step back wakes the volume for a pass";
  EXPECT_FALSE(volume.idle_until().has_value());
  next = WorkUntilIdle(volume);
  ASSERT_TRUE(next.has_value());
  EXPECT_LE(*next, clock.Now() + absl::Minutes(5)) << "not a day and 5 minutes away";

  clock.Advance(absl::Minutes(5) + absl::Seconds(1));
  WorkUntilIdle(volume);
  EXPECT_TRUE(Shared());
  volume.Close();
}

}  // namespace
}  // namespace btrdupd
