// The scanner's logic on an in-memory volume (tests/testing/fake_volume_fs.h) with the
// real SQLite index in a temporary directory.

#include "core/scanner.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/index.h"
#include "core/scan_policy.h"
#include "ioctl/errno_status.h"
#include "tests/testing/fake_volume_fs.h"
#include "tests/testing/index_contents.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::FakeVolumeFs;
using ::btrdupd::testing::IndexContents;
using ::btrdupd::testing::IndexedFile;

std::string TempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = absl::StrCat(base != nullptr ? base : "/tmp", "/scanner_test.XXXXXX");
  char* made = mkdtemp(tmpl.data());
  EXPECT_NE(made, nullptr);
  return tmpl;
}

class ScannerTest : public ::testing::Test {
 protected:
  ScannerTest() : clock_(absl::FromCivil(absl::CivilSecond(2026, 3, 10, 10, 0, 0),
                                         absl::UTCTimeZone())) {
    config_.min_file_size = 8192;
  }

  void SetUp() override {
    dir_ = TempDir();
    index_ = OpenIndex("main.db");
  }

  std::unique_ptr<VolumeIndex> OpenIndex(const std::string& name) {
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index =
        VolumeIndex::Open(absl::StrCat(dir_, "/", name));
    EXPECT_TRUE(index.ok()) << index.status();
    return index.ok() ? std::move(*index) : nullptr;
  }

  ScanOptions Options() {
    ScanOptions options;
    options.time_zone = absl::UTCTimeZone();
    options.batch_rows = 7;  // many small transactions: exercises the batching
    return options;
  }

  ScanReport Scan(ScanMode mode = ScanMode::kAuto, VolumeIndex* index = nullptr) {
    Scanner scanner(&fs_, index != nullptr ? index : index_.get(), config_, &clock_,
                    Options());
    absl::StatusOr<ScanReport> report = scanner.Run(mode);
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : ScanReport();
  }

  std::map<std::string, IndexedFile> Contents(VolumeIndex* index = nullptr) {
    absl::StatusOr<std::map<std::string, IndexedFile>> contents =
        IndexContents(index != nullptr ? index : index_.get());
    EXPECT_TRUE(contents.ok()) << contents.status();
    return contents.ok() ? *contents : std::map<std::string, IndexedFile>();
  }

  // What a clean full scan into a fresh database finds now.
  std::map<std::string, IndexedFile> CleanScanContents() {
    std::unique_ptr<VolumeIndex> fresh = OpenIndex(absl::StrCat("clean", ++clean_, ".db"));
    Scan(ScanMode::kAuto, fresh.get());
    return Contents(fresh.get());
  }

  FileRecord Row(const std::string& path) {
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash);
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    // Found by listing, not EnsureDir, which would relabel the directory's inode.
    absl::StatusOr<int64_t> dir_id = index_->EnsureDir("", 0, 0);
    EXPECT_TRUE(dir_id.ok());
    if (!dir.empty()) {
      for (absl::string_view part : absl::StrSplit(dir, '/')) {
        absl::StatusOr<std::vector<DirEntryRecord>> list = index_->ListDir(*dir_id);
        EXPECT_TRUE(list.ok());
        for (const DirEntryRecord& e : *list) {
          if (e.is_dir && e.name == part) dir_id = e.id;
        }
      }
    }
    absl::StatusOr<std::vector<DirEntryRecord>> entries = index_->ListDir(*dir_id);
    EXPECT_TRUE(entries.ok());
    for (const DirEntryRecord& e : *entries) {
      if (e.name == name && !e.is_dir) {
        absl::StatusOr<std::optional<FileRecord>> row = index_->GetFile(e.id);
        EXPECT_TRUE(row.ok() && row->has_value());
        return **row;
      }
    }
    ADD_FAILURE() << "no row for " << path;
    return FileRecord();
  }

  FakeVolumeFs fs_;
  FakeClock clock_;
  VolumeConfig config_;
  std::string dir_;
  std::unique_ptr<VolumeIndex> index_;
  int clean_ = 0;
};

TEST_F(ScannerTest, FullScanIndexesOnlyRegularFilesAtLeastMinSize) {
  fs_.WriteFile("big", 10000);
  fs_.WriteFile("exact", 8192);
  fs_.WriteFile("small", 8191);
  fs_.Symlink("link");
  fs_.MakeFifo("fifo");
  fs_.MakeDirs("a/b");
  fs_.WriteFile("a/b/deep", 20000);
  fs_.MakeDir(".btrdupd");
  fs_.WriteFile(".btrdupd/btrdupd.db", 1 << 20);
  fs_.MakeDir("x");
  fs_.WriteFile("x/.btrdupd", 9000);  // only the one at the root is special

  ScanReport report = Scan();

  EXPECT_EQ(report.kind, ScanKind::kFull);
  std::map<std::string, IndexedFile> contents = Contents();
  EXPECT_EQ(contents.size(), 4u);
  EXPECT_TRUE(contents.count("big"));
  EXPECT_TRUE(contents.count("exact"));
  EXPECT_TRUE(contents.count("a/b/deep"));
  EXPECT_TRUE(contents.count("x/.btrdupd"));
  EXPECT_EQ(contents["big"].size, 10000u);
  EXPECT_EQ(contents["big"].ino, fs_.InodeOf("big"));
  EXPECT_EQ(report.files_added, 4);
  EXPECT_EQ(report.errors, 0);
}

TEST_F(ScannerTest, NestedSubvolumeIsScannedForeignMountIsNot) {
  fs_.MakeDir("home");
  const uint64_t sub = fs_.CreateSubvolume("home/sub");
  fs_.WriteFile("home/sub/file", 10000);
  fs_.MakeDir("mnt");
  fs_.MountForeign("mnt");
  fs_.WriteFile("mnt/foreign", 10000);

  ScanReport report = Scan();

  std::map<std::string, IndexedFile> contents = Contents();
  ASSERT_TRUE(contents.count("home/sub/file"));
  EXPECT_EQ(contents["home/sub/file"].subvol_id, sub);
  EXPECT_FALSE(contents.count("mnt/foreign"));
  EXPECT_EQ(report.subvolumes_added, 2);

  // And an incremental pass after changes on both sides keeps it that way.
  fs_.WriteFile("home/sub/file2", 10000);
  fs_.WriteFile("mnt/foreign2", 10000);
  fs_.WriteFile("home/top", 10000);
  report = Scan();
  EXPECT_EQ(report.kind, ScanKind::kIncremental);
  contents = Contents();
  EXPECT_TRUE(contents.count("home/sub/file2"));
  EXPECT_TRUE(contents.count("home/top"));
  EXPECT_TRUE(contents.count("home/sub/file"));
  EXPECT_FALSE(contents.count("mnt/foreign2"));
  EXPECT_EQ(contents, CleanScanContents());
}

TEST_F(ScannerTest, IncrementalFollowsAddsDeletesRenamesAndMoves) {
  fs_.MakeDirs("d1/inner");
  fs_.MakeDirs("d2");
  for (int i = 0; i < 5; ++i) {
    fs_.WriteFile(absl::StrCat("d1/f", i), 10000 + i);
    fs_.WriteFile(absl::StrCat("d1/inner/g", i), 20000 + i);
    fs_.WriteFile(absl::StrCat("d2/h", i), 30000 + i);
  }
  Scan();

  fs_.WriteFile("d2/new", 12345);                 // added
  fs_.Remove("d1/f0");                            // deleted
  fs_.Rename("d1/f1", "d1/f1-renamed");           // renamed in place
  fs_.Rename("d1/f2", "d2/f2-moved");             // moved across directories
  fs_.Rename("d1/inner", "d2/inner-moved");       // a directory moved
  fs_.WriteFile("d2/inner-moved/g0", 50000);      // ... and a file in it changed
  fs_.WriteFile("d2/h0", 40000);                  // rewritten in place
  fs_.WriteFile("d2/h1", 100);                    // shrunk below the floor
  fs_.Rename("d2/h2", "d2/h3");                   // renamed over another file
  fs_.MakeDirs("d3/e/f");                         // a new tree
  fs_.WriteFile("d3/e/f/z", 10000);
  fs_.Symlink("d2/h4-link");
  fs_.Remove("d2/h4");
  fs_.Symlink("d2/h4");                           // a file replaced by a symlink

  ScanReport report = Scan();

  EXPECT_EQ(report.kind, ScanKind::kIncremental);
  EXPECT_EQ(report.errors, 0);
  std::map<std::string, IndexedFile> contents = Contents();
  EXPECT_EQ(contents, CleanScanContents());
  EXPECT_TRUE(contents.count("d2/new"));
  EXPECT_FALSE(contents.count("d1/f0"));
  EXPECT_TRUE(contents.count("d1/f1-renamed"));
  EXPECT_TRUE(contents.count("d2/f2-moved"));
  EXPECT_TRUE(contents.count("d2/inner-moved/g3"));
  EXPECT_FALSE(contents.count("d1/inner/g3"));
  EXPECT_EQ(contents["d2/inner-moved/g0"].size, 50000u);
  EXPECT_EQ(contents["d2/h0"].size, 40000u);
  EXPECT_FALSE(contents.count("d2/h1"));
  EXPECT_FALSE(contents.count("d2/h2"));
  EXPECT_EQ(contents["d2/h3"].ino, fs_.InodeOf("d2/h3"));
  EXPECT_TRUE(contents.count("d3/e/f/z"));
  EXPECT_FALSE(contents.count("d2/h4"));
}

TEST_F(ScannerTest, ReplacedDirectoryIsReindexed) {
  fs_.MakeDir("d");
  fs_.WriteFile("d/old", 10000);
  Scan();
  fs_.Remove("d");
  fs_.MakeDir("d");
  fs_.WriteFile("d/new", 10000);

  Scan();

  std::map<std::string, IndexedFile> contents = Contents();
  EXPECT_FALSE(contents.count("d/old"));
  EXPECT_TRUE(contents.count("d/new"));
  EXPECT_EQ(contents, CleanScanContents());
}

TEST_F(ScannerTest, IncrementalCostFollowsTheChangesNotTheVolume) {
  for (int d = 0; d < 40; ++d) {
    fs_.MakeDir(absl::StrCat("d", d));
    for (int f = 0; f < 25; ++f) fs_.WriteFile(absl::StrCat("d", d, "/f", f), 9000 + f);
  }
  Scan();
  const int64_t reads_before = fs_.dirs_read();
  const int64_t stats_before = fs_.entries_statted();

  fs_.WriteFile("d7/new", 10000);   // one directory changes
  fs_.WriteFile("d9/f3", 12000);    // one file changes in place

  ScanReport report = Scan();

  EXPECT_EQ(report.kind, ScanKind::kIncremental);
  EXPECT_EQ(report.files_added, 1);
  EXPECT_EQ(report.files_changed, 1);
  EXPECT_EQ(report.dirs_listed, 1);
  EXPECT_EQ(fs_.dirs_read() - reads_before, 1);
  EXPECT_LE(fs_.entries_statted() - stats_before, 2);
  EXPECT_EQ(Contents(), CleanScanContents());
}

// The full walk takes the files' stats from one bulk read per directory
// (VolumeDir::StatRegularFiles) and lstats only the rest (here: the subdirectory).
TEST_F(ScannerTest, AFullScanStatsFilesInBulk) {
  fs_.MakeDirs("d/sub");
  for (int f = 0; f < 10; ++f) fs_.WriteFile(absl::StrCat("d/f", f), 9000 + f);
  fs_.WriteFile("d/sub/g", 10000);
  clock_.Set(fs_.last_file_time() + absl::Hours(1));  // every file long written back
  const int64_t stats_before = fs_.entries_statted();

  ScanReport report = Scan();

  EXPECT_EQ(report.kind, ScanKind::kFull);
  EXPECT_EQ(report.files_added, 11);
  EXPECT_EQ(fs_.bulk_stats(), report.dirs_listed);
  EXPECT_EQ(fs_.entries_statted() - stats_before, 2);  // "d" and "d/sub"
  EXPECT_EQ(Contents(), CleanScanContents());
}

// A file changed in the last minutes may have writes its inode item does not show yet
// (its data not written back): the full scan stats it rather than trust the item.
TEST_F(ScannerTest, AFullScanStatsFilesChangedLatelyOneByOne) {
  fs_.MakeDirs("d");
  for (int f = 0; f < 10; ++f) fs_.WriteFile(absl::StrCat("d/f", f), 9000 + f);
  fs_.AdvanceFileTime(absl::Hours(1));
  fs_.WriteFile("d/f3", 12000);  // changed just now
  clock_.Set(fs_.last_file_time() + absl::Minutes(1));
  const int64_t stats_before = fs_.entries_statted();

  ScanReport report = Scan();

  EXPECT_EQ(report.files_added, 10);
  EXPECT_EQ(fs_.entries_statted() - stats_before, 2);  // "d" and "d/f3"
  EXPECT_EQ(Row("d/f3").size, 12000u);
}

TEST_F(ScannerTest, NothingChangedMeansNothingRead) {
  fs_.MakeDir("d");
  fs_.WriteFile("d/f", 10000);
  Scan();
  const int64_t reads_before = fs_.dirs_read();

  ScanReport report = Scan();

  EXPECT_EQ(report.kind, ScanKind::kIncremental);
  EXPECT_EQ(fs_.dirs_read(), reads_before);
  EXPECT_EQ(report.files_added + report.files_changed + report.files_removed, 0);
}

TEST_F(ScannerTest, SnapshotsArePickedUpAndDeletedSubvolumesDropped) {
  const uint64_t data = fs_.CreateSubvolume("data");
  fs_.WriteFile("data/a", 10000);
  fs_.MakeDir("data/dir");
  fs_.WriteFile("data/dir/b", 10000);
  Scan();

  const uint64_t snap = fs_.Snapshot("data", "snap", /*read_only=*/true);
  ScanReport report = Scan();
  EXPECT_EQ(report.kind, ScanKind::kIncremental);
  EXPECT_EQ(report.subvolumes_added, 1);
  std::map<std::string, IndexedFile> contents = Contents();
  ASSERT_TRUE(contents.count("snap/dir/b"));
  EXPECT_EQ(contents["snap/dir/b"].subvol_id, snap);
  EXPECT_EQ(contents["snap/dir/b"].ino, contents["data/dir/b"].ino);
  EXPECT_EQ(contents, CleanScanContents());

  fs_.DeleteSubvolume("data");
  report = Scan();
  EXPECT_EQ(report.subvolumes_removed, 1);
  contents = Contents();
  EXPECT_FALSE(contents.count("data/a"));
  EXPECT_TRUE(contents.count("snap/a"));
  EXPECT_EQ(contents, CleanScanContents());
  absl::StatusOr<std::vector<SubvolumeRecord>> subvols = index_->ListSubvolumes();
  ASSERT_TRUE(subvols.ok());
  for (const SubvolumeRecord& s : *subvols) EXPECT_NE(s.id, data);
}

TEST_F(ScannerTest, SnapshotsAreNotIndexedWithDedupSnapshotsOff) {
  config_.dedup_snapshots = false;
  fs_.CreateSubvolume("data");
  fs_.WriteFile("data/a", 10000);
  fs_.Snapshot("data", "snap");
  Scan();
  std::map<std::string, IndexedFile> contents = Contents();
  EXPECT_TRUE(contents.count("data/a"));
  EXPECT_FALSE(contents.count("snap/a"));

  fs_.WriteFile("snap/b", 10000);
  Scan();
  EXPECT_FALSE(Contents().count("snap/b"));
}

TEST_F(ScannerTest, MovedSubvolumeIsFoundAtItsNewPath) {
  fs_.MakeDirs("a");
  fs_.MakeDirs("b");
  fs_.CreateSubvolume("a/sub");
  fs_.WriteFile("a/sub/f", 10000);
  Scan();
  fs_.Rename("a/sub", "b/sub");

  ScanReport report = Scan();

  EXPECT_EQ(report.kind, ScanKind::kIncremental);
  std::map<std::string, IndexedFile> contents = Contents();
  EXPECT_TRUE(contents.count("b/sub/f"));
  EXPECT_FALSE(contents.count("a/sub/f"));
  EXPECT_EQ(contents, CleanScanContents());
}

TEST_F(ScannerTest, StoppedIncrementalPassIsRedoneByTheNextOne) {
  for (int d = 0; d < 20; ++d) {
    fs_.MakeDir(absl::StrCat("d", d));
    for (int f = 0; f < 5; ++f) fs_.WriteFile(absl::StrCat("d", d, "/f", f), 10000);
  }
  Scan();
  for (int d = 0; d < 20; ++d) {
    fs_.WriteFile(absl::StrCat("d", d, "/new"), 10000);
    fs_.Remove(absl::StrCat("d", d, "/f0"));
    fs_.WriteFile(absl::StrCat("d", d, "/f1"), 20000);
  }
  fs_.Rename("d3", "d4/d3");
  ScanOptions options = Options();
  int calls = 0;
  options.should_stop = [&calls] { return ++calls > 8; };
  Scanner stopping(&fs_, index_.get(), config_, &clock_, options);
  ASSERT_TRUE(absl::IsCancelled(stopping.Run(ScanMode::kAuto).status()));
  EXPECT_NE(Contents(), CleanScanContents());  // part done

  ScanReport report = Scan();

  EXPECT_EQ(report.kind, ScanKind::kIncremental);
  EXPECT_EQ(Contents(), CleanScanContents());
}

TEST_F(ScannerTest, VolumeRootIsIndexedEvenWhenItIsASnapshot) {
  config_.dedup_snapshots = false;
  fs_.MarkRootAsSnapshotOf("uuid-origin");
  fs_.WriteFile("top", 10000);
  fs_.CreateSubvolume("data");
  fs_.Snapshot("data", "snap");
  fs_.WriteFile("snap/x", 10000);

  Scan();

  std::map<std::string, IndexedFile> contents = Contents();
  EXPECT_TRUE(contents.count("top"));
  EXPECT_FALSE(contents.count("snap/x"));
}

TEST_F(ScannerTest, FileChangedDuringItsWaitWaitsTwiceAsLong) {
  config_.initial_wait_minutes = 5;
  fs_.WriteFile("f", 10000);
  Scan();
  const absl::Time t0 = clock_.Now();
  EXPECT_EQ(Row("f").next_eligible, t0 + absl::Minutes(5));
  EXPECT_EQ(Row("f").backoff_level, 0);

  clock_.Advance(absl::Minutes(2));
  fs_.WriteFile("f", 10001);
  Scan();
  EXPECT_EQ(Row("f").backoff_level, 1);
  EXPECT_EQ(Row("f").next_eligible, clock_.Now() + absl::Minutes(10));

  clock_.Advance(absl::Minutes(3));
  fs_.WriteFile("f", 10002);
  Scan();
  EXPECT_EQ(Row("f").next_eligible, clock_.Now() + absl::Minutes(20));
}

TEST_F(ScannerTest, MetadataOnlyChangeKeepsTheFilesState) {
  fs_.WriteFile("f", 10000);
  Scan();
  const FileRecord before = Row("f");
  ASSERT_TRUE(index_->SetHash(before.id, HashState::kFull, std::string(32, 'h')).ok());
  clock_.Advance(absl::Minutes(1));
  fs_.RewriteExtents("f");  // btrfs dedupe: new extent items, size and times kept

  ScanReport report = Scan();

  EXPECT_EQ(report.files_changed, 0);
  const FileRecord after = Row("f");
  EXPECT_EQ(after.hash_state, HashState::kFull);
  EXPECT_EQ(after.next_eligible, before.next_eligible);
}

// A rewrite that keeps the size and sets the mtime back (utimensat: rsync --inplace,
// tar, cp -p) still moves the ctime, which nobody can set.
TEST_F(ScannerTest, RewriteWithItsMtimeSetBackIsSeen) {
  fs_.WriteFile("f", 10000);
  Scan();
  const FileRecord before = Row("f");
  ASSERT_TRUE(index_->SetHash(before.id, HashState::kFull, std::string(32, 'h')).ok());
  fs_.WriteFile("f", 10000);
  fs_.SetMtime("f", before.mtime_ns);

  ScanReport report = Scan();

  EXPECT_EQ(report.files_changed, 1);
  EXPECT_EQ(Row("f").hash_state, HashState::kNone);
}

TEST_F(ScannerTest, AChmodIsTakenForAChange) {
  fs_.WriteFile("f", 10000);
  Scan();
  ASSERT_TRUE(index_->SetHash(Row("f").id, HashState::kFull, std::string(32, 'h')).ok());
  fs_.TouchMetadata("f");

  ScanReport report = Scan();

  EXPECT_EQ(report.files_changed, 1);
  EXPECT_EQ(Row("f").hash_state, HashState::kNone);
}

TEST_F(ScannerTest, MetadataOnlyChangeIsNotStattedAgain) {
  // btrfs dedupe rewrites the extent items of every file it shares: the next pass must
  // not look at each of them again.
  fs_.MakeDir("d");
  for (int i = 0; i < 5; ++i) fs_.WriteFile("d/f" + std::to_string(i), 10000 + i);
  Scan();
  for (int i = 0; i < 5; ++i) fs_.RewriteExtents("d/f" + std::to_string(i));
  const int64_t statted = fs_.paths_statted();

  ScanReport report = Scan();

  EXPECT_EQ(report.kind, ScanKind::kIncremental);
  EXPECT_EQ(report.files_changed, 0);
  EXPECT_EQ(fs_.paths_statted(), statted);
}

TEST_F(ScannerTest, InPlaceRewriteIsStillSeenNextToMetadataOnlyChanges) {
  fs_.MakeDir("d");
  fs_.WriteFile("d/a", 10000);
  fs_.WriteFile("d/b", 10000);
  Scan();
  for (const char* path : {"d/a", "d/b"}) {
    ASSERT_TRUE(index_->SetHash(Row(path).id, HashState::kFull, std::string(32, 'h')).ok());
  }
  fs_.RewriteExtents("d/a");
  fs_.WriteFile("d/b", 10000);  // same size, new mtime

  ScanReport report = Scan();

  EXPECT_EQ(report.files_changed, 1);
  EXPECT_EQ(Row("d/a").hash_state, HashState::kFull);
  EXPECT_EQ(Row("d/b").hash_state, HashState::kNone);
}

TEST_F(ScannerTest, ForcedRescanOfUnchangedVolumeChangesNothing) {
  fs_.MakeDir("d");
  fs_.WriteFile("d/f", 10000);
  Scan();
  const FileRecord before = Row("d/f");
  ASSERT_TRUE(index_->SetHash(before.id, HashState::kFull, std::string(32, 'h')).ok());

  ScanReport report = Scan(ScanMode::kForceFull);

  EXPECT_EQ(report.kind, ScanKind::kFull);
  EXPECT_EQ(report.files_added, 0);
  EXPECT_EQ(report.files_changed, 0);
  EXPECT_EQ(report.files_removed, 0);
  EXPECT_EQ(report.dirs_removed, 0);
  EXPECT_EQ(Row("d/f").hash_state, HashState::kFull);
}

TEST_F(ScannerTest, VanishedAndUnreadableEntriesNeverStopThePass) {
  fs_.MakeDirs("d/locked");
  fs_.WriteFile("d/locked/x", 10000);
  fs_.WriteFile("d/gone", 10000);
  fs_.WriteFile("d/denied", 10000);
  fs_.WriteFile("d/fine", 10000);
  fs_.FailStat("d/gone", ErrnoToStatus(ENOENT, "stat d/gone"));
  fs_.FailStat("d/denied", ErrnoToStatus(EACCES, "stat d/denied"));
  fs_.FailOpen("d/locked", ErrnoToStatus(EACCES, "open d/locked"));

  ScanReport report = Scan();

  std::map<std::string, IndexedFile> contents = Contents();
  EXPECT_TRUE(contents.count("d/fine"));
  EXPECT_FALSE(contents.count("d/gone"));
  EXPECT_FALSE(contents.count("d/denied"));
  EXPECT_EQ(report.errors, 2);
  ASSERT_EQ(report.first_errors.size(), 2u);

  // Once readable again, a forced rescan picks them up; vanished rows leave on their own.
  fs_.ClearFailures();
  Scan(ScanMode::kForceFull);
  EXPECT_EQ(Contents(), CleanScanContents());
  fs_.FailStat("d/fine", ErrnoToStatus(ENOENT, "stat d/fine"));
  Scan(ScanMode::kForceFull);
  EXPECT_FALSE(Contents().count("d/fine"));
}

TEST_F(ScannerTest, StoppedScanCommitsAndTheNextRunFinishesIt) {
  for (int d = 0; d < 30; ++d) {
    fs_.MakeDir(absl::StrCat("d", d));
    for (int f = 0; f < 10; ++f) fs_.WriteFile(absl::StrCat("d", d, "/f", f), 10000);
  }
  ScanOptions options = Options();
  int calls = 0;
  options.should_stop = [&calls] { return ++calls > 12; };
  Scanner stopping(&fs_, index_.get(), config_, &clock_, options);
  absl::StatusOr<ScanReport> stopped = stopping.Run(ScanMode::kAuto);
  ASSERT_TRUE(absl::IsCancelled(stopped.status())) << stopped.status();
  const size_t partial = Contents().size();
  EXPECT_GT(partial, 0u);
  EXPECT_LT(partial, 300u);

  fs_.Remove("d0/f0");  // and the volume moves on meanwhile
  ScanReport report = Scan();

  EXPECT_EQ(report.kind, ScanKind::kFull);
  EXPECT_EQ(Contents(), CleanScanContents());
  EXPECT_EQ(Contents().size(), 299u);
  EXPECT_EQ(Scan().kind, ScanKind::kIncremental);
}

TEST_F(ScannerTest, GenerationGapSchedulesAFullScanAtTheConfiguredHour) {
  config_.max_generation_gap = 50;
  config_.full_scan_hour = 2;
  config_.min_hours_between_full_scans = 24;
  fs_.WriteFile("f", 10000);
  ScanReport first = Scan();  // 2026-03-10 10:00 UTC
  EXPECT_EQ(first.kind, ScanKind::kFull);
  EXPECT_EQ(first.next_full_scan, absl::InfiniteFuture());

  fs_.AdvanceGeneration("", 100);
  fs_.WriteFile("g", 10000);
  clock_.Advance(absl::Hours(4));  // 14:00
  ScanReport gap = Scan();
  EXPECT_EQ(gap.kind, ScanKind::kIncremental);
  EXPECT_TRUE(Contents().count("g"));  // incremental passes go on meanwhile
  // At least 24 h after the last full scan (03-11 10:00), at 02:00: 03-12 02:00.
  const absl::Time due = absl::FromCivil(absl::CivilSecond(2026, 3, 12, 2, 0, 0),
                                         absl::UTCTimeZone());
  EXPECT_EQ(gap.next_full_scan, due);

  clock_.Set(due - absl::Minutes(1));
  EXPECT_EQ(Scan().kind, ScanKind::kIncremental);
  clock_.Set(due + absl::Minutes(10));
  EXPECT_EQ(Scan().kind, ScanKind::kFull);
  EXPECT_EQ(Scan().kind, ScanKind::kIncremental);
}

TEST(ScanPolicyTest, NextFullScanTime) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  VolumeConfig config;
  config.full_scan_hour = 2;
  config.min_hours_between_full_scans = 24;
  const absl::Time now = absl::FromCivil(absl::CivilSecond(2026, 5, 1, 14, 30, 0), utc);
  FullScanState never;
  EXPECT_EQ(NextFullScanTime(never, config, now, utc), now);

  FullScanState idle;
  idle.ever_completed = true;
  idle.last_full = now - absl::Hours(100);
  EXPECT_EQ(NextFullScanTime(idle, config, now, utc), absl::InfiniteFuture());

  FullScanState pending = idle;
  pending.pending = true;
  EXPECT_EQ(NextFullScanTime(pending, config, now, utc), now);

  FullScanState wanted = idle;
  wanted.wanted = true;
  EXPECT_EQ(NextFullScanTime(wanted, config, now, utc),
            absl::FromCivil(absl::CivilSecond(2026, 5, 2, 2, 0, 0), utc));
  // Inside the hour: now.
  const absl::Time in_hour = absl::FromCivil(absl::CivilSecond(2026, 5, 2, 2, 40, 0), utc);
  EXPECT_EQ(NextFullScanTime(wanted, config, in_hour, utc), in_hour);
  // The last full scan was recent: wait for min_hours_between_full_scans first.
  wanted.last_full = absl::FromCivil(absl::CivilSecond(2026, 5, 2, 1, 0, 0), utc);
  EXPECT_EQ(NextFullScanTime(wanted, config, in_hour, utc),
            absl::FromCivil(absl::CivilSecond(2026, 5, 3, 2, 0, 0), utc));
}

}  // namespace
}  // namespace btrdupd
