// What btrdupd trusts at a volume's root, tried as a user of the volume would, with the
// real binary on a fresh loopback btrfs: `.btrdupd.conf` and the database directory are
// used only if root put them there (a regular file / directory, owned by root, not
// writable by group or others), never followed through a symlink, never opened as a FIFO.
// Anything else refuses the volume with a message that says how to fix it.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/volume_open.h"
#include "gtest/gtest.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::CommandResult;
using ::btrdupd::testing::RunCommand;
using ::btrdupd::testing::WriteFile;
using ::btrdupd::testing::WritePatternFile;

constexpr char kBinary[] = "daemon/btrdupd";
constexpr int kExitAllFailed = 3;

class VolumeTrustTest : public testing::BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(WritePatternFile(Path("a"), 100000, 1).ok());
    ASSERT_TRUE(WritePatternFile(Path("b"), 100000, 1).ok());
    const char* tmp = std::getenv("TEST_TMPDIR");
    outside_ = absl::StrCat(tmp ? tmp : "/tmp", "/outside_", getpid());
    ASSERT_EQ(system(absl::StrCat("rm -rf '", outside_, "' && mkdir -p '", outside_, "'").c_str()),
              0);
  }

  CommandResult Btrdupd(std::vector<std::string> args) {
    args.insert(args.begin(), kBinary);
    absl::StatusOr<CommandResult> result = RunCommand(args);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : CommandResult{-1, "", ""};
  }

  // The one-shot run refuses the volume with a message holding every one of `words`.
  void ExpectRefused(const std::vector<std::string>& words) {
    CommandResult r = Btrdupd({"--no-wait", mount_path()});
    EXPECT_EQ(r.exit_code, kExitAllFailed) << r.stdout_text << r.stderr_text;
    for (const std::string& word : words) {
      EXPECT_TRUE(absl::StrContains(r.stderr_text, word)) << word << " not in: " << r.stderr_text;
    }
  }

  std::string outside_;
};

TEST_F(VolumeTrustTest, ConfigThatIsAFifoIsRefusedWithoutBeingOpened) {
  ASSERT_EQ(mkfifo(Path(".btrdupd.conf").c_str(), 0644), 0);
  ExpectRefused({".btrdupd.conf is a FIFO"});  // returns: the FIFO did not block it
  // Nobody holds the FIFO open for reading (a writer could not open it without a reader).
  const int writer = open(Path(".btrdupd.conf").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  EXPECT_EQ(writer, -1);
  EXPECT_EQ(errno, ENXIO);
}

TEST_F(VolumeTrustTest, ConfigSymlinkIsNotFollowed) {
  // A stand-in for /etc/shadow: root's own file, outside the volume, that would even
  // parse as a valid config if it were followed.
  const std::string stand_in = outside_ + "/shadow";
  ASSERT_TRUE(WriteFile(stand_in, "[DEFAULT]\nmin_file_size = 1\n").ok());
  ASSERT_EQ(chmod(stand_in.c_str(), 0600), 0);
  ASSERT_EQ(symlink(stand_in.c_str(), Path(".btrdupd.conf").c_str()), 0);
  ExpectRefused({".btrdupd.conf is a symlink"});
}

TEST_F(VolumeTrustTest, ConfigOwnedByAUserIsRefusedWithTheFix) {
  ASSERT_TRUE(WriteFile(Path(".btrdupd.conf"), "[DEFAULT]\n").ok());
  ASSERT_EQ(chown(Path(".btrdupd.conf").c_str(), 65534, 65534), 0);
  ExpectRefused({"owned by uid 65534", "chown root:root"});
}

TEST_F(VolumeTrustTest, ConfigWritableByOthersIsRefusedWithTheFix) {
  ASSERT_TRUE(WriteFile(Path(".btrdupd.conf"), "[DEFAULT]\n").ok());
  ASSERT_EQ(chmod(Path(".btrdupd.conf").c_str(), 0666), 0);
  ExpectRefused({"writable by group or others", "chmod go-w"});
}

TEST_F(VolumeTrustTest, RootsOwnConfigIsRead) {
  ASSERT_TRUE(WriteFile(Path(".btrdupd.conf"), "[DEFAULT]\ninitial_wait_minutes = 1\n").ok());
  ASSERT_EQ(chmod(Path(".btrdupd.conf").c_str(), 0644), 0);
  CommandResult r = Btrdupd({"--no-wait", mount_path()});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
}

TEST_F(VolumeTrustTest, DatabaseDirectoryThatIsASymlinkIsRefused) {
  ASSERT_EQ(symlink(outside_.c_str(), Path(".btrdupd").c_str()), 0);
  ExpectRefused({".btrdupd is a symlink", "--db-dir"});
  struct stat st;
  EXPECT_NE(lstat((outside_ + "/btrdupd.db").c_str(), &st), 0) << "database made outside";
}

// The directory is swapped for a symlink to a user's directory right after the check:
// the database is still opened in the directory that was checked.
TEST_F(VolumeTrustTest, DatabaseDirectorySwappedAfterTheCheckIsNotFollowed) {
  const std::string locks = outside_ + "-locks";
  VolumeOpenOptions options;
  options.lock_dir = locks;
  options.before_database_open = [&] {
    ASSERT_EQ(rename(Path(".btrdupd").c_str(), Path(".checked").c_str()), 0);
    ASSERT_EQ(symlink(outside_.c_str(), Path(".btrdupd").c_str()), 0);
  };
  absl::StatusOr<OpenedVolume> opened = OpenVolumeForWork(mount_path(), options, absl::Now());
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_TRUE((*opened).index->SetMeta("probe", "1").ok());
  opened->index.reset();
  struct stat st;
  EXPECT_EQ(lstat(Path(".checked/btrdupd.db").c_str(), &st), 0) << "not in the checked dir";
  EXPECT_NE(lstat((outside_ + "/btrdupd.db").c_str(), &st), 0) << "database made outside";
  EXPECT_NE(lstat((outside_ + "/btrdupd.db-journal").c_str(), &st), 0) << "journal outside";
  system(absl::StrCat("rm -rf '", locks, "'").c_str());
}

TEST_F(VolumeTrustTest, DatabaseDirectoryOwnedByAUserIsRefused) {
  ASSERT_EQ(mkdir(Path(".btrdupd").c_str(), 0700), 0);
  ASSERT_EQ(chown(Path(".btrdupd").c_str(), 65534, 65534), 0);
  ExpectRefused({"owned by uid 65534", "--db-dir"});
}

TEST_F(VolumeTrustTest, FileNamesWithTerminalEscapesNeverReachTheOutputRaw) {
  const std::string esc = "\x1b]0;owned\x07\x1b[31mred";  // title change, colour
  const std::string csi = "\xc2\x9b" "2J";                  // C1 CSI: clear screen
  ASSERT_TRUE(WritePatternFile(Path(esc), 100000, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path(csi), 100000, 1).ok());
  CommandResult r = Btrdupd({"-v", "--no-wait", mount_path()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string out = r.stdout_text + r.stderr_text;
  EXPECT_TRUE(absl::StrContains(out, "\\xc2\\x9b2J")) << "the name is not shown escaped: " << out;
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  EXPECT_EQ(out.find('\x07'), std::string::npos);
  EXPECT_EQ(out.find("\xc2\x9b"), std::string::npos);
}

}  // namespace
}  // namespace btrdupd
