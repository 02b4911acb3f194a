// The scanner on real loopback btrfs filesystems, through daemon/real_volume_fs.h.
//
// Each test compares the index with what a clean full scan into a fresh database finds,
// so "the incremental pass kept up" means exactly "equal to starting over".

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/index.h"
#include "core/scanner.h"
#include "daemon/real_volume_fs.h"
#include "ioctl/dedupe.h"
#include "ioctl/directory.h"
#include "ioctl/errno_status.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"
#include "tests/testing/index_contents.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::IndexContents;
using ::btrdupd::testing::IndexedFile;
using ::btrdupd::testing::RunChecked;
using ::btrdupd::testing::RunShellChecked;
using ::btrdupd::testing::WriteFile;
using ::btrdupd::testing::WritePatternFile;
using Contents = std::map<std::string, IndexedFile>;

class ScanBtrfsTest : public ::btrdupd::testing::BtrfsTest {
 protected:
  ScanBtrfsTest()
      : clock_(absl::FromCivil(absl::CivilSecond(2026, 3, 10, 10, 0, 0), absl::UTCTimeZone())) {}

  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(mkdir(Path(".btrdupd").c_str(), 0700), 0);
    // Databases outside the volume (clean scans, another root) go to a directory of this
    // test's own: a name shared by two tests would hand the second one the first one's
    // rows as its "fresh" database.
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/scan-XXXXXX");
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    db_dir_ = dir;
    ASSERT_OK_AND_ASSIGN(index_, VolumeIndex::Open(Path(".btrdupd/btrdupd.db")));
    ASSERT_OK_AND_ASSIGN(fs_, RealVolumeFs::Open(mount_path()));
  }

  void TearDown() override {
    index_.reset();
    fs_.reset();
    BtrfsTest::TearDown();
    if (!db_dir_.empty()) RunChecked({"rm", "-rf", db_dir_}).IgnoreError();
  }

  ScanOptions Options() {
    ScanOptions options;
    options.time_zone = absl::UTCTimeZone();
    return options;
  }

  // A pass into `index` (the volume's own by default); an error reported for any file
  // fails it too.
  absl::StatusOr<ScanReport> Scan(ScanMode mode = ScanMode::kAuto,
                                  VolumeIndex* index = nullptr) {
    Scanner scanner(fs_.get(), index != nullptr ? index : index_.get(), config_, &clock_,
                    Options());
    ASSIGN_OR_RETURN(ScanReport report, scanner.Run(mode));
    if (!report.first_errors.empty()) {
      return absl::InternalError(absl::StrCat("the pass reported errors, first: ",
                                              report.first_errors.front()));
    }
    return report;
  }

  // A clean full scan into a fresh database outside the volume.
  absl::StatusOr<Contents> CleanScan() {
    ASSIGN_OR_RETURN(std::unique_ptr<VolumeIndex> fresh,
                     VolumeIndex::Open(absl::StrCat(db_dir_, "/clean-", ++clean_, ".db")));
    RETURN_IF_ERROR(Scan(ScanMode::kAuto, fresh.get()).status());
    return IndexContents(fresh.get());
  }

  absl::Status Sync() {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenPath(mount_path(), O_RDONLY | O_DIRECTORY));
    if (syncfs(fd.get()) != 0) return ErrnoToStatus(errno, "syncfs");
    return absl::OkStatus();
  }

  absl::Status Write(const std::string& relative, uint64_t size, uint64_t seed = 1) {
    return WritePatternFile(Path(relative), size, seed);
  }
  absl::Status Mkdir(const std::string& relative) {
    if (mkdir(Path(relative).c_str(), 0755) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("mkdir ", relative));
    }
    return absl::OkStatus();
  }
  absl::Status Btrfs(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"btrfs"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunChecked(argv).status();
  }

  FakeClock clock_;
  VolumeConfig config_;
  std::unique_ptr<RealVolumeFs> fs_;
  std::unique_ptr<VolumeIndex> index_;
  std::string db_dir_;  // this test's databases outside the volume
  int clean_ = 0;
};

TEST_F(ScanBtrfsTest, FullScanFindsExactlyTheRegularFilesAtLeastMinSize) {
  ASSERT_OK(Write("big", 9000));
  ASSERT_OK(Write("exact", 8192));
  ASSERT_OK(Write("small", 8191));
  ASSERT_OK(Write("tiny", 10));
  ASSERT_EQ(symlink("big", Path("link").c_str()), 0);
  ASSERT_EQ(mkfifo(Path("fifo").c_str(), 0600), 0);
  ASSERT_OK(Mkdir("a"));
  ASSERT_OK(Mkdir("a/b"));
  ASSERT_OK(Write("a/b/deep", 100000));
  ASSERT_OK(Write(".btrdupd/other", 50000));  // next to the database: never indexed
  ASSERT_OK(Mkdir("a/.btrdupd"));
  ASSERT_OK(Write("a/.btrdupd/kept", 9000));  // only the one at the volume root is special

  ASSERT_OK_AND_ASSIGN(ScanReport report, Scan());

  EXPECT_EQ(report.kind, ScanKind::kFull);
  ASSERT_OK_AND_ASSIGN(Contents contents, IndexContents(index_.get()));
  std::vector<std::string> paths;
  for (const auto& [path, file] : contents) paths.push_back(path);
  EXPECT_EQ(paths, (std::vector<std::string>{"a/.btrdupd/kept", "a/b/deep", "big", "exact"}));
  struct stat st;
  ASSERT_EQ(stat(Path("a/b/deep").c_str(), &st), 0);
  EXPECT_EQ(contents["a/b/deep"].ino, st.st_ino);
  EXPECT_EQ(contents["a/b/deep"].size, 100000u);
  EXPECT_EQ(contents["a/b/deep"].subvol_id, 5u);
}

TEST_F(ScanBtrfsTest, DescendsIntoNestedSubvolumesButNotIntoOtherMounts) {
  ASSERT_OK(Mkdir("home"));
  ASSERT_OK(Btrfs({"subvolume", "create", Path("home/sub")}));
  ASSERT_OK(Write("home/sub/inside", 10000));
  ASSERT_OK(Btrfs({"subvolume", "create", Path("home/sub/deeper")}));
  ASSERT_OK(Write("home/sub/deeper/more", 10000));
  ASSERT_OK(Mkdir("mnt"));
  ASSERT_TRUE(RunChecked({"mount", "-t", "tmpfs", "tmpfs", Path("mnt")}).ok());
  absl::Cleanup unmount = [this] { (void)RunChecked({"umount", Path("mnt")}); };
  ASSERT_OK(Write("mnt/on-tmpfs", 10000));

  ASSERT_OK(Scan());

  ASSERT_OK_AND_ASSIGN(Contents contents, IndexContents(index_.get()));
  EXPECT_EQ(contents.count("home/sub/inside"), 1u);
  EXPECT_EQ(contents.count("home/sub/deeper/more"), 1u);
  EXPECT_EQ(contents.count("mnt/on-tmpfs"), 0u);
  EXPECT_NE(contents["home/sub/inside"].subvol_id, 5u);
  EXPECT_NE(contents["home/sub/deeper/more"].subvol_id, contents["home/sub/inside"].subvol_id);

  // Changes on both sides: the incremental pass still never enters the tmpfs.
  ASSERT_OK(Write("mnt/on-tmpfs-2", 10000));
  ASSERT_OK(Write("home/sub/inside-2", 10000));
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(ScanReport report, Scan());
  EXPECT_EQ(report.kind, ScanKind::kIncremental);
  ASSERT_OK_AND_ASSIGN(contents, IndexContents(index_.get()));
  EXPECT_EQ(contents.count("home/sub/inside-2"), 1u);
  EXPECT_EQ(contents.count("mnt/on-tmpfs-2"), 0u);
  ASSERT_OK_AND_ASSIGN(const Contents clean, CleanScan());
  EXPECT_EQ(contents, clean);
}

TEST_F(ScanBtrfsTest, IncrementalPassEqualsACleanScanAfterEveryKindOfChange) {
  ASSERT_OK(Btrfs({"subvolume", "create", Path("data")}));
  ASSERT_OK(Btrfs({"subvolume", "create", Path("scratch")}));
  ASSERT_OK(Write("scratch/tmp", 20000));
  for (const char* dir : {"data/d1", "data/d1/inner", "data/d2", "top"}) ASSERT_OK(Mkdir(dir));
  for (int i = 0; i < 6; ++i) {
    ASSERT_OK(Write(absl::StrCat("data/d1/f", i), 9000 + i, i));
    ASSERT_OK(Write(absl::StrCat("data/d1/inner/g", i), 10000 + i, 10 + i));
    ASSERT_OK(Write(absl::StrCat("data/d2/h", i), 11000 + i, 20 + i));
    ASSERT_OK(Write(absl::StrCat("top/t", i), 12000 + i, 30 + i));
  }
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(const ScanReport pass1, Scan());
  ASSERT_EQ(pass1.kind, ScanKind::kFull);

  ASSERT_OK(Write("data/d2/new", 30000));                                            // added
  ASSERT_OK(Write("top/new", 30000));
  ASSERT_EQ(unlink(Path("data/d1/f0").c_str()), 0);                       // deleted
  ASSERT_EQ(rename(Path("data/d1/f1").c_str(), Path("data/d1/f1b").c_str()), 0);
  ASSERT_EQ(rename(Path("data/d1/f2").c_str(), Path("data/d2/f2").c_str()), 0);
  ASSERT_EQ(rename(Path("data/d1/inner").c_str(), Path("data/d2/inner").c_str()), 0);
  ASSERT_OK(Write("data/d2/inner/g0", 50000, 99));                                   // rewritten
  ASSERT_OK(Write("data/d2/h1", 100));  // now too small
  ASSERT_EQ(rename(Path("data/d2/h2").c_str(), Path("data/d2/h3").c_str()), 0);
  ASSERT_OK(Mkdir("data/d3"));
  ASSERT_OK(Write("data/d3/z", 10000));
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snap")}));   // new snapshot
  ASSERT_OK(Btrfs({"subvolume", "delete", Path("scratch")}));  // deleted subvolume
  ASSERT_OK(Sync());

  ASSERT_OK_AND_ASSIGN(ScanReport report, Scan());

  EXPECT_EQ(report.kind, ScanKind::kIncremental);
  EXPECT_EQ(report.subvolumes_added, 1);
  EXPECT_EQ(report.subvolumes_removed, 1);
  ASSERT_OK_AND_ASSIGN(Contents contents, IndexContents(index_.get()));
  ASSERT_OK_AND_ASSIGN(const Contents clean, CleanScan());
  EXPECT_EQ(contents, clean);
  EXPECT_EQ(contents.count("data/d2/new"), 1u);
  EXPECT_EQ(contents.count("data/d1/f0"), 0u);
  EXPECT_EQ(contents.count("data/d1/f1b"), 1u);
  EXPECT_EQ(contents.count("data/d2/inner/g5"), 1u);
  EXPECT_EQ(contents.count("data/d1/inner/g5"), 0u);
  EXPECT_EQ(contents["data/d2/inner/g0"].size, 50000u);
  EXPECT_EQ(contents.count("data/d2/h1"), 0u);
  EXPECT_EQ(contents.count("data/d2/h2"), 0u);
  EXPECT_EQ(contents.count("snap/d2/inner/g5"), 1u);
  EXPECT_EQ(contents.count("scratch/tmp"), 0u);
  EXPECT_EQ(contents["snap/d2/new"].ino, contents["data/d2/new"].ino);
}

// A user renames a directory at the volume root and leaves a symlink in its place
// (pointing at the renamed directory, or out of the volume). Until btrfs commits, the
// root's new entries are delayed items a tree search does not see, so a pass without a
// commit finds only the changed inodes below it: none is looked up through the link (the
// rows under the old name go, nothing outside is statted). A pass after a commit, as
// btrdupd's own scans make one, finds the files under their new name.
TEST_F(ScanBtrfsTest, RootDirectoryRenamedWithASymlinkLeftInItsPlaceIsPickedUp) {
  for (const char* dir : {"d", "d/sub", "x"}) ASSERT_OK(Mkdir(dir));
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(Write(absl::StrCat("d/f", i), 9000 + i, i));
    ASSERT_OK(Write(absl::StrCat("d/sub/g", i), 10000 + i, 10 + i));
    ASSERT_OK(Write(absl::StrCat("x/h", i), 11000 + i, 20 + i));
  }
  ASSERT_OK_AND_ASSIGN(const ScanReport full, Scan());
  ASSERT_EQ(full.kind, ScanKind::kFull);
  ASSERT_EQ(rename(Path("d").c_str(), Path("e").c_str()), 0);
  ASSERT_EQ(symlink(Path("e").c_str(), Path("d").c_str()), 0);
  ASSERT_EQ(rename(Path("x").c_str(), Path("y").c_str()), 0);
  ASSERT_EQ(symlink("/", Path("x").c_str()), 0);

  // No commit yet: nothing is confirmed at its old path through the link.
  ASSERT_OK_AND_ASSIGN(const ScanReport before_commit, Scan());
  EXPECT_EQ(before_commit.kind, ScanKind::kIncremental);
  ASSERT_OK_AND_ASSIGN(Contents contents, IndexContents(index_.get()));
  EXPECT_EQ(contents.count("d/f0"), 0u);
  EXPECT_EQ(contents.count("d/sub/g2"), 0u);
  EXPECT_EQ(contents.count("x/h1"), 0u);

  // With the commit btrdupd's scans start with: everything is found where it is now.
  fs_->set_commit_before_listing(true);
  ASSERT_OK_AND_ASSIGN(const ScanReport committed, Scan());
  EXPECT_EQ(committed.kind, ScanKind::kIncremental);
  ASSERT_OK_AND_ASSIGN(contents, IndexContents(index_.get()));
  ASSERT_OK_AND_ASSIGN(const Contents clean, CleanScan());
  EXPECT_EQ(contents, clean);
  EXPECT_EQ(contents.count("e/f0"), 1u);
  EXPECT_EQ(contents.count("e/sub/g2"), 1u);
  EXPECT_EQ(contents.count("y/h1"), 1u);
}

// The same in one pass, as a one-shot run or a daemon's change check makes it.
TEST_F(ScanBtrfsTest, RootDirectoryRenamedWithASymlinkIsFoundByOneCommittingPass) {
  fs_->set_commit_before_listing(true);
  ASSERT_OK(Mkdir("d"));
  for (int i = 0; i < 3; ++i) ASSERT_OK(Write(absl::StrCat("d/f", i), 9000 + i, i));
  ASSERT_OK_AND_ASSIGN(const ScanReport full, Scan());
  ASSERT_EQ(full.kind, ScanKind::kFull);
  ASSERT_EQ(rename(Path("d").c_str(), Path("e").c_str()), 0);
  ASSERT_EQ(symlink(Path("e").c_str(), Path("d").c_str()), 0);
  ASSERT_OK_AND_ASSIGN(const ScanReport pass, Scan());
  EXPECT_EQ(pass.kind, ScanKind::kIncremental);
  ASSERT_OK_AND_ASSIGN(const Contents contents, IndexContents(index_.get()));
  ASSERT_OK_AND_ASSIGN(const Contents clean, CleanScan());
  EXPECT_EQ(contents, clean);
  EXPECT_EQ(contents.count("e/f2"), 1u);
  EXPECT_EQ(contents.count("d/f2"), 0u);
}

TEST_F(ScanBtrfsTest, FileChangedDuringItsWaitWaitsTwiceAsLong) {
  config_.initial_wait_minutes = 5;
  ASSERT_OK(Write("f", 10000, 1));
  ASSERT_OK(Sync());
  ASSERT_OK(Scan());
  struct stat st;
  ASSERT_EQ(stat(Path("f").c_str(), &st), 0);

  clock_.Advance(absl::Minutes(2));
  ASSERT_OK(Write("f", 10000, 2));  // same size, new content: mtime and transid move
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(ScanReport report, Scan());
  EXPECT_EQ(report.files_changed, 1);

  absl::StatusOr<std::vector<FileRecord>> rows = index_->FindFilesByInode(5, st.st_ino);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].backoff_level, 1);
  EXPECT_EQ((*rows)[0].next_eligible, clock_.Now() + absl::Minutes(10));
}

TEST_F(ScanBtrfsTest, GenerationGapOverTheLimitLeadsToAFullScan) {
  config_.max_generation_gap = 5;
  config_.full_scan_hour = 10;  // the fake clock's hour
  config_.min_hours_between_full_scans = 0;
  ASSERT_OK(Write("f", 10000));
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(const ScanReport pass1, Scan());
  ASSERT_EQ(pass1.kind, ScanKind::kFull);
  for (int i = 0; i < 8; ++i) {  // eight transactions
    ASSERT_OK(Write(absl::StrCat("g", i), 10000, i));
    ASSERT_OK(Sync());
  }
  clock_.Advance(absl::Minutes(1));

  ASSERT_OK_AND_ASSIGN(ScanReport gap, Scan());
  EXPECT_EQ(gap.kind, ScanKind::kIncremental);
  EXPECT_LE(gap.next_full_scan, clock_.Now());

  ASSERT_OK_AND_ASSIGN(const ScanReport pass2, Scan());
  EXPECT_EQ(pass2.kind, ScanKind::kFull);
  ASSERT_OK_AND_ASSIGN(const ScanReport pass3, Scan());
  EXPECT_EQ(pass3.kind, ScanKind::kIncremental);
  ASSERT_OK_AND_ASSIGN(const Contents now, IndexContents(index_.get()));
  ASSERT_OK_AND_ASSIGN(const Contents clean, CleanScan());
  EXPECT_EQ(now, clean);
}

// btrfs dedupe rewrites a file's extent items and inode, but not its size or mtime: the
// scanner must not take that for a change (the file would lose its hash and be hashed
// and deduped again after every dedupe).
TEST_F(ScanBtrfsTest, DedupedFileKeepsItsHashInTheNextPass) {
  ASSERT_OK(Write("a", 1 << 20, 7));
  ASSERT_OK(Write("b", 1 << 20, 7));
  ASSERT_OK(Sync());
  ASSERT_OK(Scan());
  ASSERT_OK_AND_ASSIGN(Contents contents, IndexContents(index_.get()));
  for (const char* name : {"a", "b"}) {
    absl::StatusOr<std::vector<FileRecord>> rows =
        index_->FindFilesByInode(5, contents[name].ino);
    ASSERT_TRUE(rows.ok() && rows->size() == 1u);
    ASSERT_TRUE(index_->SetHash((*rows)[0].id, HashState::kFull, std::string(32, 'h')).ok());
  }
  absl::StatusOr<std::vector<VolumeSubvolume>> before = fs_->ListSubvolumes();
  ASSERT_TRUE(before.ok() && !before->empty());
  {
    absl::StatusOr<UniqueFd> src = OpenPath(Path("a"), O_RDONLY);
    absl::StatusOr<UniqueFd> dst = OpenPath(Path("b"), O_RDONLY);
    ASSERT_TRUE(src.ok() && dst.ok());
    const int dst_fd = dst->get();
    absl::StatusOr<std::vector<DedupeResult>> done =
        DedupeFile(src->get(), 1 << 20, absl::MakeConstSpan(&dst_fd, 1));
    ASSERT_TRUE(done.ok()) << done.status();
    ASSERT_EQ((*done)[0].kind, DedupeResult::Kind::kDeduped) << (*done)[0].error;
  }
  ASSERT_OK(Sync());
  // The premise: the dedupe did write b's inode.
  absl::StatusOr<std::vector<InodeChange>> changed =
      fs_->ChangedInodesSince("", (*before)[0].generation);
  ASSERT_TRUE(changed.ok());
  bool b_changed = false;
  for (const InodeChange& c : *changed) b_changed |= c.ino == contents["b"].ino;
  EXPECT_TRUE(b_changed);

  ASSERT_OK_AND_ASSIGN(ScanReport report, Scan());

  EXPECT_EQ(report.files_changed, 0);
  absl::StatusOr<std::vector<FileRecord>> b = index_->FindFilesByInode(5, contents["b"].ino);
  ASSERT_TRUE(b.ok() && b->size() == 1u);
  EXPECT_EQ((*b)[0].hash_state, HashState::kFull);
}

// A same-size rewrite whose mtime is set back (utimensat, as rsync --inplace, tar or
// cp -p do) leaves size and mtime as the row has them: its ctime tells it from a dedupe.
class RewriteWithMtimeSetBackTest : public ScanBtrfsTest,
                                    public ::testing::WithParamInterface<ScanMode> {};

TEST_P(RewriteWithMtimeSetBackTest, IsSeenByTheNextPass) {
  ASSERT_OK(Write("f", 10000, 1));
  ASSERT_OK(Sync());
  ASSERT_OK(Scan());
  ASSERT_OK_AND_ASSIGN(Contents contents, IndexContents(index_.get()));
  absl::StatusOr<std::vector<FileRecord>> rows = index_->FindFilesByInode(5, contents["f"].ino);
  ASSERT_TRUE(rows.ok() && rows->size() == 1u);
  ASSERT_OK(index_->SetHash((*rows)[0].id, HashState::kFull, std::string(32, 'h')));
  struct stat st;
  ASSERT_EQ(stat(Path("f").c_str(), &st), 0);

  ASSERT_OK(Write("f", 10000, 2));  // new bytes, same size
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, Path("f").c_str(), times, 0), 0);
  ASSERT_OK(Sync());  // written back: the inode item holds what stat says
  struct stat now;
  ASSERT_EQ(stat(Path("f").c_str(), &now), 0);
  ASSERT_EQ(now.st_mtim.tv_sec, st.st_mtim.tv_sec);  // the premise: size and mtime kept
  ASSERT_EQ(now.st_mtim.tv_nsec, st.st_mtim.tv_nsec);
  ASSERT_EQ(now.st_size, st.st_size);
  clock_.Advance(absl::Minutes(1));

  ASSERT_OK_AND_ASSIGN(ScanReport report, Scan(GetParam()));

  EXPECT_EQ(report.files_changed, 1);
  rows = index_->FindFilesByInode(5, contents["f"].ino);
  ASSERT_TRUE(rows.ok() && rows->size() == 1u);
  EXPECT_EQ((*rows)[0].hash_state, HashState::kNone);
}

INSTANTIATE_TEST_SUITE_P(Passes, RewriteWithMtimeSetBackTest,
                         ::testing::Values(ScanMode::kAuto, ScanMode::kForceFull),
                         [](const ::testing::TestParamInfo<ScanMode>& info) {
                           return info.param == ScanMode::kAuto ? "Incremental" : "Full";
                         });

// The full scan reads a directory's inode items in bulk, as of the last commit; a file
// whose data is not written back yet still has its old size there (btrfs updates the
// item at the end of the writeback). Taken for "too small", it would get no row, and no
// later change of its inode would bring it back: such a file is statted.
TEST_F(ScanBtrfsTest, FileWrittenButNotWrittenBackIsIndexedByAFullScan) {
  for (int i = 0; i < 10; ++i) ASSERT_OK(Write(absl::StrCat("big", i), 10000, i));
  {
    ASSERT_OK_AND_ASSIGN(UniqueFd fd, OpenPath(Path("f"), O_WRONLY | O_CREAT, 0644));
  }
  ASSERT_OK(Sync());  // "f" is committed empty
  const std::string bytes(10000, 'x');
  {
    ASSERT_OK_AND_ASSIGN(UniqueFd fd, OpenPath(Path("f"), O_WRONLY));
    ASSERT_EQ(pwrite(fd.get(), bytes.data(), bytes.size(), 0), 10000);
  }
  fs_->set_commit_before_listing(true);
  {  // The premise: its item still says 0 bytes after a commit; all are read in bulk.
    ASSERT_OK(fs_->ListSubvolumes().status());
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<VolumeDir> root, fs_->OpenDir(""));
    ASSERT_OK_AND_ASSIGN(std::vector<VolumeDirEntry> entries, root->ReadEntries());
    ASSERT_OK_AND_ASSIGN(auto bulk, root->StatRegularFiles(entries));
    struct stat f;
    ASSERT_EQ(stat(Path("f").c_str(), &f), 0);
    ASSERT_EQ(bulk.count(f.st_ino), 1u);
    ASSERT_EQ(bulk[f.st_ino].size, 0u) << "written back already: the premise does not hold";
    ASSERT_EQ(bulk.size(), 11u);
  }

  ASSERT_OK_AND_ASSIGN(ScanReport report, Scan());

  EXPECT_EQ(report.kind, ScanKind::kFull);
  ASSERT_OK_AND_ASSIGN(Contents contents, IndexContents(index_.get()));
  ASSERT_EQ(contents.count("f"), 1u);
  EXPECT_EQ(contents["f"].size, 10000u);
  EXPECT_EQ(contents.size(), 11u);
}

bool Lists(const std::vector<InodeChange>& changes, uint64_t ino) {
  for (const InodeChange& c : changes) {
    if (c.ino == ino) return true;
  }
  return false;
}

TEST_F(ScanBtrfsTest, GenerationListedAfterACommitIsExact) {
  ASSERT_OK(Write("f", 9000));
  ASSERT_OK(Sync());
  struct stat st;
  ASSERT_EQ(stat(Path("f").c_str(), &st), 0);
  // The premise: without a commit the newest generation may still be running, so one
  // less is reported and the next search lists that transaction's files again.
  absl::StatusOr<std::vector<VolumeSubvolume>> plain = fs_->ListSubvolumes();
  ASSERT_TRUE(plain.ok() && !plain->empty());
  absl::StatusOr<std::vector<InodeChange>> again =
      fs_->ChangedInodesSince("", (*plain)[0].generation);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(Lists(*again, st.st_ino));

  fs_->set_commit_before_listing(true);
  absl::StatusOr<std::vector<VolumeSubvolume>> exact = fs_->ListSubvolumes();
  ASSERT_TRUE(exact.ok() && !exact->empty());
  absl::StatusOr<std::vector<InodeChange>> none =
      fs_->ChangedInodesSince("", (*exact)[0].generation);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(Lists(*none, st.st_ino));
  // A change after the listing is still seen.
  ASSERT_OK(Write("f", 9001));
  ASSERT_OK(Sync());
  absl::StatusOr<std::vector<InodeChange>> later =
      fs_->ChangedInodesSince("", (*exact)[0].generation);
  ASSERT_TRUE(later.ok());
  EXPECT_TRUE(Lists(*later, st.st_ino));
}

TEST_F(ScanBtrfsTest, ListingDirectoriesDoesNotMakeThemLookChanged) {
  for (int d = 0; d < 5; ++d) {
    ASSERT_OK(Mkdir(absl::StrCat("d", d)));
    for (int f = 0; f < 20; ++f) ASSERT_OK(Write(absl::StrCat("d", d, "/f", f), 9000));
  }
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(const ScanReport pass1, Scan());
  ASSERT_EQ(pass1.kind, ScanKind::kFull);
  ASSERT_OK(Sync());  // an atime written by the listing would be in this transaction

  ASSERT_OK_AND_ASSIGN(ScanReport report, Scan());

  EXPECT_EQ(report.kind, ScanKind::kIncremental);
  EXPECT_EQ(report.dirs_listed, 0);
}

// A directory larger than one getdents64 buffer. (Entry types, lstat and OpenDir on a
// symlink are held to the kernel by tests/volume_fs_contract_test.cc.)
TEST_F(ScanBtrfsTest, ReadDirectoryReturnsEveryEntryWithTypeAndInode) {
  ASSERT_OK(Mkdir("many"));
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(WriteFile(Path(absl::StrCat("many/a-rather-long-file-name-", i)), "x").ok());
  }
  ASSERT_OK(Mkdir("many/sub"));
  ASSERT_EQ(symlink("x", Path("many/link").c_str()), 0);
  absl::StatusOr<UniqueFd> fd = OpenDirectoryAt(AT_FDCWD, Path("many"));
  ASSERT_TRUE(fd.ok()) << fd.status();

  absl::StatusOr<std::vector<DirectoryEntry>> entries = ReadDirectory(fd->get());

  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 5002u);
  std::map<std::string, DirectoryEntry> by_name;
  for (const DirectoryEntry& e : *entries) by_name[e.name] = e;
  EXPECT_EQ(by_name.size(), 5002u);
  EXPECT_EQ(by_name["sub"].d_type, DT_DIR);
  EXPECT_EQ(by_name["link"].d_type, DT_LNK);
  EXPECT_EQ(by_name["a-rather-long-file-name-4321"].d_type, DT_REG);
  struct stat st;
  ASSERT_EQ(lstat(Path("many/a-rather-long-file-name-4321").c_str(), &st), 0);
  EXPECT_EQ(by_name["a-rather-long-file-name-4321"].ino, st.st_ino);
}

// A volume whose root is a subvolume other than the top level (as with a `subvol=@home`
// mount; here a bind mount of the subvolume's directory).
TEST_F(ScanBtrfsTest, VolumeRootMayBeANonTopLevelSubvolume) {
  ASSERT_OK(Btrfs({"subvolume", "create", Path("home")}));
  ASSERT_OK(Write("home/a", 10000));
  ASSERT_OK(Btrfs({"subvolume", "create", Path("home/nested")}));
  ASSERT_OK(Write("home/nested/b", 10000));
  ASSERT_OK(Write("outside", 10000));
  const std::string root = absl::StrCat(mount_path(), "-home");
  ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
  ASSERT_TRUE(RunChecked({"mount", "--bind", Path("home"), root}).ok());
  absl::Cleanup unmount = [root] {
    (void)RunChecked({"umount", root});
    rmdir(root.c_str());
  };
  ASSERT_OK_AND_ASSIGN(fs_, RealVolumeFs::Open(root));
  ASSERT_OK_AND_ASSIGN(index_, VolumeIndex::Open(db_dir_ + "/home.db"));

  ASSERT_OK_AND_ASSIGN(ScanReport first, Scan());
  ASSERT_OK_AND_ASSIGN(Contents contents, IndexContents(index_.get()));
  EXPECT_EQ(contents.size(), 2u);
  EXPECT_EQ(contents.count("a"), 1u);
  EXPECT_EQ(contents.count("nested/b"), 1u);
  EXPECT_EQ(first.subvolumes_added, 2);

  ASSERT_OK(Write("home/c", 10000));
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(ScanReport second, Scan());
  EXPECT_EQ(second.kind, ScanKind::kIncremental);
  EXPECT_EQ(second.subvolumes_walked, 0);  // the root subvolume was found again by inode
  EXPECT_EQ(second.files_added, 1);
  ASSERT_OK_AND_ASSIGN(const Contents now, IndexContents(index_.get()));
  ASSERT_OK_AND_ASSIGN(const Contents clean, CleanScan());
  EXPECT_EQ(now, clean);
  fs_.reset();
}

// Runs a full scan of 20 000 files in a child process that SIGKILLs itself part-way,
// then reruns in this process: the result must equal a clean scan, and SQLite must find
// the database intact.
TEST_F(ScanBtrfsTest, ScanKilledMidwayAndRerunEqualsACleanScan) {
  constexpr int kDirs = 40;
  constexpr int kPerDir = 500;
  const std::string block(8192, 'x');
  for (int d = 0; d < kDirs; ++d) {
    ASSERT_OK(Mkdir(absl::StrCat("d", d)));
    for (int f = 0; f < kPerDir; ++f) {
      ASSERT_TRUE(WriteFile(Path(absl::StrCat("d", d, "/f", f)),
                            absl::StrCat(block, d, "/", f)).ok());
    }
  }
  ASSERT_OK(Sync());

  index_.reset();  // the child opens the database itself
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index =
        VolumeIndex::Open(Path(".btrdupd/btrdupd.db"));
    if (!index.ok()) _exit(3);
    ScanOptions options = Options();
    options.batch_rows = 1500;
    options.progress = [](const ScanProgress& progress) {
      if (progress.files_seen >= 11000) raise(SIGKILL);
    };
    Scanner scanner(fs_.get(), index->get(), config_, &clock_, options);
    (void)scanner.Run(ScanMode::kAuto);
    _exit(4);  // not killed: the test fails below
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << "status " << wstatus;

  ASSERT_OK_AND_ASSIGN(index_, VolumeIndex::Open(Path(".btrdupd/btrdupd.db")));
  ASSERT_OK_AND_ASSIGN(const Contents killed, IndexContents(index_.get()));
  const size_t partial = killed.size();
  EXPECT_GT(partial, 0u);
  EXPECT_LT(partial, static_cast<size_t>(kDirs * kPerDir));

  ASSERT_OK_AND_ASSIGN(ScanReport rerun, Scan());
  EXPECT_EQ(rerun.kind, ScanKind::kFull);
  ASSERT_OK_AND_ASSIGN(Contents contents, IndexContents(index_.get()));
  EXPECT_EQ(contents.size(), static_cast<size_t>(kDirs * kPerDir));
  ASSERT_OK_AND_ASSIGN(const Contents clean, CleanScan());
  EXPECT_EQ(contents, clean);
  ASSERT_OK_AND_ASSIGN(const ScanReport pass1, Scan());
  EXPECT_EQ(pass1.kind, ScanKind::kIncremental);

  index_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(Path(".btrdupd/btrdupd.db").c_str(), &db), SQLITE_OK);
  std::string result;
  sqlite3_exec(
      db, "PRAGMA integrity_check",
      [](void* out, int, char** values, char**) {
        static_cast<std::string*>(out)->append(values[0] != nullptr ? values[0] : "");
        return 0;
      },
      &result, nullptr);
  sqlite3_close(db);
  EXPECT_EQ(result, "ok");
}

// The same for an incremental pass with many changes: killed part-way, the next pass
// (incremental again: the generation was not recorded) ends equal to a clean scan.
TEST_F(ScanBtrfsTest, IncrementalPassKilledMidwayIsRedoneByTheNext) {
  const std::string block(8192, 'y');
  for (int d = 0; d < 10; ++d) {
    ASSERT_OK(Mkdir(absl::StrCat("old", d)));
    for (int f = 0; f < 100; ++f) {
      ASSERT_TRUE(WriteFile(Path(absl::StrCat("old", d, "/f", f)), absl::StrCat(block, f)).ok());
    }
  }
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(const ScanReport pass1, Scan());
  ASSERT_EQ(pass1.kind, ScanKind::kFull);
  for (int d = 0; d < 30; ++d) {
    ASSERT_OK(Mkdir(absl::StrCat("new", d)));
    for (int f = 0; f < 200; ++f) {
      ASSERT_TRUE(WriteFile(Path(absl::StrCat("new", d, "/f", f)), absl::StrCat(block, d, f)).ok());
    }
  }
  for (int d = 0; d < 10; ++d) {
    ASSERT_EQ(unlink(Path(absl::StrCat("old", d, "/f7")).c_str()), 0);
    ASSERT_EQ(rename(Path(absl::StrCat("old", d, "/f8")).c_str(),
                     Path(absl::StrCat("new", d, "/moved")).c_str()), 0);
  }
  ASSERT_EQ(rename(Path("old9").c_str(), Path("new0/old9").c_str()), 0);
  ASSERT_OK(Sync());

  index_.reset();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index =
        VolumeIndex::Open(Path(".btrdupd/btrdupd.db"));
    if (!index.ok()) _exit(3);
    ScanOptions options = Options();
    options.batch_rows = 500;
    options.progress = [](const ScanProgress& progress) {
      if (progress.files_seen >= 3000) raise(SIGKILL);
    };
    Scanner scanner(fs_.get(), index->get(), config_, &clock_, options);
    (void)scanner.Run(ScanMode::kAuto);
    _exit(4);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << "status " << wstatus;

  ASSERT_OK_AND_ASSIGN(index_, VolumeIndex::Open(Path(".btrdupd/btrdupd.db")));
  ASSERT_OK_AND_ASSIGN(const Contents killed, IndexContents(index_.get()));
  const size_t partial = killed.size();
  EXPECT_GT(partial, 1000u);   // some of the pass was committed...
  EXPECT_LT(partial, 6990u);   // ... but not all of it
  ASSERT_OK_AND_ASSIGN(ScanReport rerun, Scan());
  EXPECT_EQ(rerun.kind, ScanKind::kIncremental);
  ASSERT_OK_AND_ASSIGN(Contents contents, IndexContents(index_.get()));
  EXPECT_EQ(contents.size(), 1000u - 10u + 6000u);
  ASSERT_OK_AND_ASSIGN(const Contents clean, CleanScan());
  EXPECT_EQ(contents, clean);
}

}  // namespace
}  // namespace btrdupd
