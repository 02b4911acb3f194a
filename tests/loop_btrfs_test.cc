// Tests of the test harness itself: the loopback filesystem really is btrfs,
// and nothing (mount, loop device, files) is left behind.

#include "tests/testing/loop_btrfs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <string>

#include "absl/strings/match.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"

namespace btrdupd {
namespace testing {
namespace {

using ::testing::HasSubstr;

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

TEST(LoopBtrfsTest, MountsBtrfsAndRemovesEverything) {
  std::string image;
  std::string mount;
  {
    absl::StatusOr<std::unique_ptr<LoopBtrfs>> fs = LoopBtrfs::Create();
    ASSERT_TRUE(fs.ok()) << fs.status();
    image = (*fs)->image_path();
    mount = (*fs)->mount_path();
    struct statfs sfs;
    ASSERT_EQ(statfs(mount.c_str(), &sfs), 0);
    EXPECT_EQ(sfs.f_type, BTRFS_SUPER_MAGIC);
    ASSERT_TRUE(WriteFile((*fs)->Path("hello"), "world").ok());
    absl::StatusOr<std::string> back = ReadFile((*fs)->Path("hello"));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, "world");
  }
  EXPECT_FALSE(Exists(image));
  EXPECT_FALSE(Exists(mount));
  absl::StatusOr<CommandResult> mounts = RunCommand({"findmnt", "--mountpoint", mount});
  ASSERT_TRUE(mounts.ok());
  EXPECT_FALSE(mounts->ok()) << "still mounted: " << mounts->stdout_text;
  absl::StatusOr<std::string> loops = RunChecked({"losetup", "--associated", image});
  ASSERT_TRUE(loops.ok()) << loops.status();
  EXPECT_EQ(*loops, "");
}

TEST(LoopBtrfsTest, AppliesMountOptions) {
  LoopBtrfs::Options options;
  options.mount_options = "compress=zstd";
  absl::StatusOr<std::unique_ptr<LoopBtrfs>> fs = LoopBtrfs::Create(options);
  ASSERT_TRUE(fs.ok()) << fs.status();
  absl::StatusOr<std::string> opts =
      RunChecked({"findmnt", "-n", "-o", "OPTIONS", "--mountpoint", (*fs)->mount_path()});
  ASSERT_TRUE(opts.ok()) << opts.status();
  EXPECT_THAT(*opts, HasSubstr("compress=zstd"));
}

TEST(LoopBtrfsTest, FailureExplainsWhichCommandFailed) {
  LoopBtrfs::Options options;
  options.size_bytes = 1 << 20;  // Far below mkfs.btrfs's minimum.
  absl::StatusOr<std::unique_ptr<LoopBtrfs>> fs = LoopBtrfs::Create(options);
  EXPECT_TRUE(absl::IsInternal(fs.status())) << fs.status();
  EXPECT_THAT(std::string(fs.status().message()), HasSubstr("mkfs.btrfs"));
}

TEST(FilesTest, PatternIsDeterministicAndSeedDependent) {
  EXPECT_EQ(PatternBytes(1000, 7), PatternBytes(1000, 7));
  EXPECT_NE(PatternBytes(1000, 7), PatternBytes(1000, 8));
  EXPECT_EQ(PatternBytes(13, 7), PatternBytes(1000, 7).substr(0, 13));
}

TEST(CommandTest, CapturesOutputAndExitCode) {
  absl::StatusOr<CommandResult> result = RunShell("echo out; echo err >&2; exit 3");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_EQ(result->stdout_text, "out\n");
  EXPECT_EQ(result->stderr_text, "err\n");
  absl::StatusOr<std::string> checked = RunShellChecked("echo nope >&2; false");
  EXPECT_TRUE(absl::IsInternal(checked.status())) << checked.status();
  EXPECT_THAT(std::string(checked.status().message()), HasSubstr("nope"));
}

class FixtureTest : public BtrfsTest {};

TEST_F(FixtureTest, GivesEachTestAMountedFilesystem) {
  ASSERT_NE(fs_, nullptr);
  const std::string big = Path("big");
  ASSERT_TRUE(WritePatternFile(big, (3 << 20) + 5, 1).ok());
  absl::StatusOr<std::string> contents = ReadFile(big);
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(*contents, PatternBytes((3 << 20) + 5, 1));
}

}  // namespace
}  // namespace testing
}  // namespace btrdupd
