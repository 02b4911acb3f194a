// Options that mean nothing in a mode are refused before any volume is touched, on a
// real btrfs: `--daemon --dry-run` exits with the usage-error code and shares nothing
// (it used to run a daemon that deduped).

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
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

class ModeOptionsTest : public BtrfsTest {};

TEST_F(ModeOptionsTest, DryRunDaemonIsRefusedAndSharesNothing) {
  ASSERT_TRUE(WritePatternFile(Path("a"), 256 * 1024, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path("b"), 256 * 1024, 1).ok());
  sync();
  absl::StatusOr<CommandResult> r =
      RunCommand({"daemon/btrdupd", "--daemon", "--dry-run", "--test-clock-offset=1h",
                  "--socket-dir", Path("sockets"), mount_path()});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r->stderr_text, "--dry-run")) << r->stderr_text;
  UniqueFd a(open(Path("a").c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd b(open(Path("b").c_str(), O_RDONLY | O_CLOEXEC));
  absl::StatusOr<bool> shared = SharesAllExtents(a.get(), b.get());
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_FALSE(*shared);
  EXPECT_NE(access(Path(".btrdupd").c_str(), F_OK), 0) << "the volume was opened";
}

TEST_F(ModeOptionsTest, QuietRunPrintsNothingButErrors) {
  ASSERT_TRUE(WritePatternFile(Path("a"), 256 * 1024, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path("b"), 256 * 1024, 1).ok());
  sync();
  absl::StatusOr<CommandResult> r =
      RunCommand({"daemon/btrdupd", "-q", "--no-wait", mount_path()});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0) << r->stderr_text;
  EXPECT_EQ(r->stdout_text, "");
  EXPECT_EQ(r->stderr_text, "");
  UniqueFd a(open(Path("a").c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd b(open(Path("b").c_str(), O_RDONLY | O_CLOEXEC));
  absl::StatusOr<bool> shared = SharesAllExtents(a.get(), b.get());
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_TRUE(*shared) << "a quiet run still works";

  // An error is still said: a volume that is not btrfs.
  r = RunCommand({"daemon/btrdupd", "-q", "--no-wait", mount_path(), "/proc"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 1);
  EXPECT_EQ(r->stdout_text, "");
  EXPECT_TRUE(absl::StrContains(r->stderr_text, "ERROR /proc")) << r->stderr_text;
}

}  // namespace
}  // namespace btrdupd
