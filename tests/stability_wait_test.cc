// The stability wait on a real btrfs, through the built btrdupd binary: it counts from
// the file's own last change (its ctime/mtime), not from when btrdupd first saw it. So a
// first run (without --no-wait) dedupes files that were written long ago, a file written
// a minute ago waits the rest of its wait, and a file that changes again backs off.
//
// "Long ago" without waiting: --test-clock-offset makes btrdupd's clock read later than
// real time, so the files this test just wrote look that much older.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/index.h"
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
using ::btrdupd::testing::WritePatternFile;

constexpr char kBinary[] = "daemon/btrdupd";
constexpr uint64_t kSize = 256 * 1024;

class StabilityWaitTest : public BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(WritePatternFile(Path("a"), kSize, 1).ok());
    ASSERT_TRUE(WritePatternFile(Path("b"), kSize, 1).ok());
    sync();
  }

  CommandResult Btrdupd(std::vector<std::string> args) {
    args.insert(args.begin(), kBinary);
    absl::StatusOr<CommandResult> result = RunCommand(args);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : CommandResult{-1, "", ""};
  }

  bool Shared() {
    UniqueFd a(open(Path("a").c_str(), O_RDONLY | O_CLOEXEC));
    UniqueFd b(open(Path("b").c_str(), O_RDONLY | O_CLOEXEC));
    absl::StatusOr<bool> shared = SharesAllExtents(a.get(), b.get());
    EXPECT_TRUE(shared.ok()) << shared.status();
    return shared.ok() && *shared;
  }

  // The later of the file's mtime and ctime: where its wait starts.
  absl::Time LastChange(const std::string& name) {
    struct stat st;
    EXPECT_EQ(stat(Path(name).c_str(), &st), 0);
    const absl::Time m = absl::TimeFromTimespec(st.st_mtim);
    const absl::Time c = absl::TimeFromTimespec(st.st_ctim);
    return std::max(m, c);
  }

  std::optional<FileRecord> Record(const std::string& name) {
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index =
        VolumeIndex::Open(Path(".btrdupd/btrdupd.db"));
    EXPECT_TRUE(index.ok()) << index.status();
    if (!index.ok()) return std::nullopt;
    absl::StatusOr<std::optional<FileRecord>> file = (*index)->FindFile(1, name);
    EXPECT_TRUE(file.ok()) << file.status();
    return file.ok() ? *file : std::nullopt;
  }

  // Times are stored in whole seconds, rounded down.
  static absl::Time Stored(absl::Time t) { return absl::FromUnixSeconds(absl::ToUnixSeconds(t)); }
};

TEST_F(StabilityWaitTest, FilesUnchangedForLongerThanTheWaitAreDedupedOnAFirstRun) {
  CommandResult r = Btrdupd({"--test-clock-offset=10m", mount_path()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_TRUE(Shared()) << r.stdout_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "deduped 1 file")) << r.stdout_text;
  EXPECT_FALSE(absl::StrContains(r.stdout_text, "stability wait")) << r.stdout_text;
}

TEST_F(StabilityWaitTest, FileWrittenAMinuteAgoWaitsTheRestOfItsWait) {
  CommandResult r = Btrdupd({"--test-clock-offset=1m", mount_path()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_FALSE(Shared());
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "stability wait")) << r.stdout_text;
  std::optional<FileRecord> a = Record("a");
  ASSERT_TRUE(a.has_value());
  // Five minutes (initial_wait_minutes) from its last change, not from the run.
  EXPECT_EQ(a->next_eligible, Stored(LastChange("a") + absl::Minutes(5)));
}

TEST_F(StabilityWaitTest, FileChangedAfterItWasSeenWaitsTwiceAsLongFromItsChange) {
  ASSERT_EQ(Btrdupd({mount_path()}).exit_code, 0);
  ASSERT_TRUE(WritePatternFile(Path("a"), kSize, 2).ok());
  sync();
  const absl::Time changed = LastChange("a");
  CommandResult r = Btrdupd({mount_path()});
  const absl::Time after = absl::Now();
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  std::optional<FileRecord> a = Record("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->backoff_level, 1);
  EXPECT_GE(a->next_eligible, Stored(changed + absl::Minutes(10)));
  EXPECT_LE(a->next_eligible, Stored(after + absl::Minutes(10)));
}

}  // namespace
}  // namespace btrdupd
