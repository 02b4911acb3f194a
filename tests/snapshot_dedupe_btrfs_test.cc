// Linked snapshots through the scanner and the dedupe engine on real loopback btrfs:
// what a snapshot costs, and that same-path and cross-file dedupe still reach the
// snapshot copies that have no rows of their own. File access is counted through
// tests/testing/counting_file_access.h.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/dedupe_engine.h"
#include "core/index.h"
#include "core/scanner.h"
#include "daemon/file_opener.h"
#include "daemon/native_backend.h"
#include "daemon/real_file_access.h"
#include "daemon/real_volume_fs.h"
#include "ioctl/fiemap.h"
#include "ioctl/unique_fd.h"
#include "gtest/gtest.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/counting_file_access.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::CountingFileAccess;
using ::btrdupd::testing::RunChecked;
using ::btrdupd::testing::WritePatternFile;

class SnapshotDedupeBtrfsTest : public ::btrdupd::testing::BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    const char* tmp = std::getenv("TEST_TMPDIR");
    db_ = absl::StrCat(tmp ? tmp : "/tmp", "/snapdedupe-", getpid(), "-",
                       ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".db");
    unlink(db_.c_str());
    ASSERT_OK_AND_ASSIGN(index_, VolumeIndex::Open(db_));
    ASSERT_OK_AND_ASSIGN(fs_, RealVolumeFs::Open(mount_path()));
    ASSERT_OK_AND_ASSIGN(opener_, FileOpener::Open(mount_path()));
    real_ = std::make_unique<RealFileAccess>(opener_.get());
    files_ = std::make_unique<CountingFileAccess>(real_.get());
    backend_ = std::make_unique<NativeBackend>(opener_.get());
    config_.initial_wait_minutes = 0;
    ASSERT_OK(Btrfs({"subvolume", "create", Path("data")}));
    ASSERT_EQ(mkdir(Path("snaps").c_str(), 0755), 0);
  }
  void TearDown() override {
    backend_.reset();
    files_.reset();
    real_.reset();
    opener_.reset();
    fs_.reset();
    index_.reset();
    BtrfsTest::TearDown();
    unlink(db_.c_str());
  }

  absl::Status Btrfs(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"btrfs"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunChecked(argv).status();
  }
  absl::Status Write(const std::string& rel, uint64_t size, uint64_t seed) {
    return WritePatternFile(Path(rel), size, seed);
  }

  // One scan and one engine pass, like a one-shot run; returns the engine's totals.
  EngineStats Pass() {
    EXPECT_OK(RunChecked({"sync", "-f", mount_path()}).status());
    Scanner scanner(fs_.get(), index_.get(), config_, RealClock());
    EXPECT_OK(scanner.Run(ScanMode::kAuto).status());
    DedupeEngine engine(index_.get(), files_.get(), backend_.get(), config_, RealClock(),
                        mount_path());
    EXPECT_OK(engine.RunUntilIdle().status());
    return engine.stats();
  }

  bool Shared(const std::string& a, const std::string& b) {
    absl::StatusOr<UniqueFd> fa = OpenPath(Path(a), O_RDONLY);
    absl::StatusOr<UniqueFd> fb = OpenPath(Path(b), O_RDONLY);
    if (!fa.ok() || !fb.ok()) return false;
    absl::StatusOr<bool> shared = SharesAllExtents(fa->get(), fb->get());
    return shared.ok() && *shared;
  }

  VolumeConfig config_;
  std::string db_;
  std::unique_ptr<VolumeIndex> index_;
  std::unique_ptr<RealVolumeFs> fs_;
  std::unique_ptr<FileOpener> opener_;
  std::unique_ptr<RealFileAccess> real_;
  std::unique_ptr<CountingFileAccess> files_;
  std::unique_ptr<NativeBackend> backend_;
};

TEST_F(SnapshotDedupeBtrfsTest, SnapshotOfAnUnchangedSubvolumeCostsNoReadAndNoFiemap) {
  // Same-size files (hashed), a duplicate pair, and files of their own size.
  for (int i = 0; i < 6; ++i) ASSERT_OK(Write(absl::StrCat("data/same", i), 40000, i));
  ASSERT_OK(Write("data/dup-a", 50000, 9));
  ASSERT_OK(Write("data/dup-b", 50000, 9));
  for (int i = 0; i < 4; ++i)
    ASSERT_OK(Write(absl::StrCat("data/own", i), 60000 + 4096 * i, 20 + i));
  Pass();
  ASSERT_GT(files_->counts().opens_for_read, 0);
  files_->Reset();

  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/1")}));
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/2")}));
  Pass();

  EXPECT_EQ(files_->counts().opens_for_read, 0);
  EXPECT_EQ(files_->counts().fiemap_calls, 0);
  EXPECT_EQ(files_->counts().stats, 0);
  EXPECT_TRUE(Shared("data/dup-a", "snaps/2/dup-b"));
}

TEST_F(SnapshotDedupeBtrfsTest, FileRewrittenInTheSourceIsDedupedBackAgainstTheSnapshots) {
  ASSERT_OK(Write("data/f", 100000, 1));
  ASSERT_OK(Write("data/other", 70000, 2));
  Pass();
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/1")}));
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/2")}));
  Pass();
  ASSERT_TRUE(Shared("data/f", "snaps/1/f"));

  ASSERT_OK(Write("data/f", 100000, 1));  // the same bytes, written again: new extents
  ASSERT_OK(RunChecked({"sync", "-f", mount_path()}).status());
  ASSERT_FALSE(Shared("data/f", "snaps/1/f"));
  files_->Reset();
  Pass();

  EXPECT_TRUE(Shared("data/f", "snaps/1/f"));
  EXPECT_TRUE(Shared("data/f", "snaps/2/f"));
}

TEST_F(SnapshotDedupeBtrfsTest, DuplicateInTheSourceAlsoDedupesItsSnapshotCopies) {
  ASSERT_OK(Write("data/a", 80000, 5));
  ASSERT_OK(Write("data/b", 80000, 5));  // same bytes, own extents
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/1")}));
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/2")}));
  ASSERT_FALSE(Shared("snaps/1/a", "snaps/1/b"));

  Pass();

  EXPECT_TRUE(Shared("data/a", "data/b"));
  for (const char* snap : {"snaps/1", "snaps/2"}) {
    EXPECT_TRUE(Shared(absl::StrCat(snap, "/a"), absl::StrCat(snap, "/b"))) << snap;
    EXPECT_TRUE(Shared("data/a", absl::StrCat(snap, "/b"))) << snap;
  }
}

TEST_F(SnapshotDedupeBtrfsTest, RotatingTheSnapshotThatHeldTheReference) {
  ASSERT_OK(Write("data/f", 90000, 3));
  ASSERT_OK(Write("data/g", 90000, 4));
  Pass();
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/1")}));
  Pass();
  ASSERT_OK(Write("data/f", 90000, 4));  // now equal to g, and to nothing in the snapshot
  ASSERT_OK(Write("data/g", 90000, 4));  // rewritten too: snaps/1/g is the copy they share
  Pass();
  ASSERT_TRUE(Shared("data/f", "snaps/1/g"));
  ASSERT_TRUE(Shared("data/g", "snaps/1/g"));

  ASSERT_OK(Btrfs({"subvolume", "delete", Path("snaps/1")}));
  ASSERT_OK(Btrfs({"subvolume", "sync", mount_path()}));
  Pass();

  EXPECT_TRUE(Shared("data/f", "data/g"));
  ASSERT_OK_AND_ASSIGN(std::vector<FileRecord> group, index_->FilesOfSize(90000));
  ASSERT_EQ(group.size(), 2u);
  // One of the two is the reference, the other is recorded deduped against it.
  const int r = group[0].dedupe_state == DedupeState::kReference ? 0 : 1;
  EXPECT_EQ(group[r].dedupe_state, DedupeState::kReference);
  EXPECT_EQ(group[1 - r].dedupe_state, DedupeState::kDeduped);
  EXPECT_EQ(group[1 - r].reference_id, group[r].id);
}

TEST_F(SnapshotDedupeBtrfsTest, ReceivedSnapshotsAreNeverDestinations) {
  ASSERT_OK(Write("data/a", 80000, 5));
  ASSERT_OK(Write("data/b", 80000, 5));
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/1")}));
  ASSERT_EQ(mkdir(Path("recv").c_str(), 0755), 0);
  ASSERT_OK(testing::RunShellChecked(absl::StrCat("btrfs -q send '", Path("snaps/1"),
                                                  "' | btrfs -q receive '", Path("recv"), "'"))
                .status());
  ASSERT_OK(Write("data/c", 80000, 5));
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/2")}));
  ASSERT_OK(testing::RunShellChecked(absl::StrCat("btrfs -q send -p '", Path("snaps/1"), "' '",
                                                  Path("snaps/2"), "' | btrfs -q receive '",
                                                  Path("recv"), "'"))
                .status());
  ASSERT_FALSE(Shared("recv/1/a", "recv/1/b"));

  Pass();

  EXPECT_TRUE(Shared("data/a", "data/b"));
  EXPECT_TRUE(Shared("data/a", "snaps/2/c"));
  // No received file was a destination: the identical a and b of each received snapshot
  // (its own rows, and the implied copies of the one received after it) kept their own
  // extents. (Others may share theirs: a received copy can be the reference.)
  EXPECT_FALSE(Shared("recv/1/a", "recv/1/b"));
  EXPECT_FALSE(Shared("recv/2/a", "recv/2/b"));
  EXPECT_FALSE(Shared("recv/2/a", "recv/2/c"));
}

}  // namespace
}  // namespace btrdupd
