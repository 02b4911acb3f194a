// One-shot runs do what is due, on a real btrfs through the binary: a VACUUM and a
// dedupe-state reset once their intervals have passed (no daemon does them for a
// cron-driven volume), and a full scan that a generation gap scheduled for
// full_scan_hour when the run happens at another hour (still at most one per
// min_hours_between_full_scans). Later "times" come from --test-clock-offset.

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/index.h"
#include "core/maintenance.h"
#include "gtest/gtest.h"
#include "ioctl/fiemap.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::BtrfsTest;
using ::btrdupd::testing::CommandResult;
using ::btrdupd::testing::RunCommand;
using ::btrdupd::testing::WriteFile;
using ::btrdupd::testing::WritePatternFile;

constexpr uint64_t kSize = 128 * 1024;

class OneShotMaintenanceTest : public BtrfsTest {
 protected:
  CommandResult Btrdupd(const std::string& offset) {
    std::vector<std::string> args = {"daemon/btrdupd", "--no-wait"};
    if (!offset.empty()) args.push_back("--test-clock-offset=" + offset);
    args.push_back(mount_path());
    absl::StatusOr<CommandResult> r = RunCommand(args);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : CommandResult{-1, "", ""};
  }

  std::optional<std::string> Meta(const std::string& key) {
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index =
        VolumeIndex::Open(Path(".btrdupd/btrdupd.db"));
    EXPECT_TRUE(index.ok()) << index.status();
    if (!index.ok()) return std::nullopt;
    absl::StatusOr<std::optional<std::string>> value = (*index)->GetMeta(key);
    EXPECT_TRUE(value.ok()) << value.status();
    return value.ok() ? *value : std::nullopt;
  }

  // A few committed transactions: the subvolume's generation moves on.
  void MoveGenerations(int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(WritePatternFile(Path(absl::StrCat("churn", i)), 4096, i).ok());
      ASSERT_TRUE(RunCommand({"btrfs", "filesystem", "sync", mount_path()}).ok());
    }
  }
};

TEST_F(OneShotMaintenanceTest, DueVacuumAndDedupeResetRunInAOneShotRun) {
  ASSERT_TRUE(WritePatternFile(Path("a"), kSize, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path("b"), kSize, 1).ok());
  CommandResult first = Btrdupd("");
  ASSERT_EQ(first.exit_code, 0) << first.stderr_text;
  EXPECT_FALSE(absl::StrContains(first.stdout_text, "maintenance")) << first.stdout_text;
  EXPECT_FALSE(Meta(kMetaLastVacuum).has_value());

  // 31 days later (vacuum_interval_days and dedup_reset_interval_days are 30).
  CommandResult later = Btrdupd("744h");
  ASSERT_EQ(later.exit_code, 0) << later.stderr_text;
  EXPECT_TRUE(absl::StrContains(later.stdout_text,
                                "maintenance: dedupe states reset (all verified again), "
                                "database vacuumed"))
      << later.stdout_text;
  // Said once in the summary line, not twice.
  const size_t first_maintenance = later.stdout_text.find("maintenance:");
  EXPECT_EQ(later.stdout_text.find("maintenance:", first_maintenance + 1), std::string::npos)
      << later.stdout_text;
  EXPECT_TRUE(absl::StrContains(later.stdout_text, "1 already shared")) << later.stdout_text;
  EXPECT_TRUE(Meta(kMetaLastVacuum).has_value());
  EXPECT_TRUE(Meta(kMetaLastDedupeReset).has_value());

  // Done: the next run at that time has nothing due.
  CommandResult again = Btrdupd("744h");
  ASSERT_EQ(again.exit_code, 0) << again.stderr_text;
  EXPECT_FALSE(absl::StrContains(again.stdout_text, "maintenance")) << again.stdout_text;
}

TEST_F(OneShotMaintenanceTest, MissedScheduledFullScanIsMadeUpAtMostOncePerInterval) {
  // full_scan_hour twelve hours away from now: no run here happens at that hour.
  const int hour = (absl::ToCivilHour(absl::Now(), absl::LocalTimeZone()).hour() + 12) % 24;
  ASSERT_TRUE(WriteFile(Path(".btrdupd.conf"),
                        absl::StrCat("[change_detection]\nmax_generation_gap = 1\n",
                                     "full_scan_hour = ", hour, "\n",
                                     "min_hours_between_full_scans = 1\n"))
                  .ok());
  CommandResult first = Btrdupd("");
  ASSERT_EQ(first.exit_code, 0) << first.stderr_text;
  EXPECT_TRUE(absl::StrContains(first.stdout_text, "full scan")) << first.stdout_text;

  ASSERT_NO_FATAL_FAILURE(MoveGenerations(3));
  CommandResult gap = Btrdupd("");  // sees the gap: a full scan is scheduled at `hour`
  ASSERT_EQ(gap.exit_code, 0) << gap.stderr_text;
  EXPECT_TRUE(absl::StrContains(gap.stdout_text, "incremental scan")) << gap.stdout_text;

  // A day later, at another hour than `hour`: the scheduled scan was missed, do it now.
  CommandResult day_later = Btrdupd("25h");
  ASSERT_EQ(day_later.exit_code, 0) << day_later.stderr_text;
  EXPECT_TRUE(absl::StrContains(day_later.stdout_text, "full scan")) << day_later.stdout_text;

  // Another gap right after: not again within min_hours_between_full_scans.
  ASSERT_NO_FATAL_FAILURE(MoveGenerations(3));
  CommandResult soon = Btrdupd("25h");
  ASSERT_EQ(soon.exit_code, 0) << soon.stderr_text;
  EXPECT_TRUE(absl::StrContains(soon.stdout_text, "incremental scan")) << soon.stdout_text;
}

}  // namespace
}  // namespace btrdupd
