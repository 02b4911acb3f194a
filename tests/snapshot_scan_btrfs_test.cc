// Snapshots linked to their source (core/index.h, "Snapshots") on real loopback btrfs:
// the index stands for exactly the files on disk (compared with a walk of the mount,
// implied copies included) while holding rows only where a snapshot differs.

#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/index.h"
#include "core/scanner.h"
#include "daemon/real_volume_fs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
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
using ::btrdupd::testing::WritePatternFile;
// path -> (ino, size, mtime)
using Files = std::map<std::string, std::tuple<uint64_t, uint64_t, int64_t>>;

class SnapshotScanBtrfsTest : public ::btrdupd::testing::BtrfsTest {
 protected:
  SnapshotScanBtrfsTest()
      : clock_(absl::FromCivil(absl::CivilSecond(2026, 3, 10, 10, 0, 0), absl::UTCTimeZone())) {}

  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(mkdir(Path(".btrdupd").c_str(), 0700), 0);
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index =
        VolumeIndex::Open(Path(".btrdupd/btrdupd.db"));
    ASSERT_TRUE(index.ok()) << index.status();
    index_ = std::move(*index);
    absl::StatusOr<std::unique_ptr<RealVolumeFs>> fs = RealVolumeFs::Open(mount_path());
    ASSERT_TRUE(fs.ok()) << fs.status();
    fs_ = std::move(*fs);
    ASSERT_OK(Btrfs({"subvolume", "create", Path("data")}));
    ASSERT_EQ(mkdir(Path("snaps").c_str(), 0755), 0);
  }
  void TearDown() override {
    index_.reset();
    fs_.reset();
    BtrfsTest::TearDown();
  }

  absl::Status Btrfs(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"btrfs"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunChecked(argv).status();
  }
  absl::Status Write(const std::string& relative, uint64_t size, uint64_t seed) {
    return WritePatternFile(Path(relative), size, seed);
  }
  absl::Status Sync() { return RunChecked({"sync", "-f", mount_path()}).status(); }

  // A pass after a commit; an error reported for any file fails it too.
  absl::StatusOr<ScanReport> Scan() {
    RETURN_IF_ERROR(Sync());
    ScanOptions options;
    options.time_zone = absl::UTCTimeZone();
    Scanner scanner(fs_.get(), index_.get(), config_, &clock_, options);
    ASSIGN_OR_RETURN(ScanReport report, scanner.Run(ScanMode::kAuto));
    if (!report.first_errors.empty()) {
      return absl::InternalError(absl::StrCat("the pass reported errors, first: ",
                                              report.first_errors.front()));
    }
    return report;
  }

  // What the index stands for (implied copies included).
  Files Indexed() {
    absl::StatusOr<std::map<std::string, IndexedFile>> contents = IndexContents(index_.get());
    EXPECT_TRUE(contents.ok()) << contents.status();
    Files out;
    if (!contents.ok()) return out;
    for (const auto& [path, f] : *contents) out[path] = {f.ino, f.size, f.mtime_ns};
    return out;
  }

  // Regular files >= min_file_size on disk, by a plain walk of the mount.
  Files OnDisk() {
    Files out;
    std::vector<std::string> queue = {""};
    while (!queue.empty()) {
      const std::string rel = queue.back();
      queue.pop_back();
      DIR* dir = opendir(Path(rel).c_str());
      if (dir == nullptr) continue;
      while (dirent* e = readdir(dir)) {
        const std::string name = e->d_name;
        if (name == "." || name == ".." || (rel.empty() && name == ".btrdupd")) continue;
        const std::string child = rel.empty() ? name : absl::StrCat(rel, "/", name);
        struct stat st;
        if (lstat(Path(child).c_str(), &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
          queue.push_back(child);
        } else if (S_ISREG(st.st_mode) && st.st_size >= static_cast<off_t>(config_.min_file_size)) {
          out[child] = {st.st_ino, static_cast<uint64_t>(st.st_size),
                        st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
        }
      }
      closedir(dir);
    }
    return out;
  }

  // Rows the index holds for the subvolume at `path`.
  int64_t RowsUnder(const std::string& path) {
    absl::StatusOr<std::vector<SubvolumeRecord>> subvols = index_->ListSubvolumes();
    EXPECT_TRUE(subvols.ok());
    uint64_t id = 0;
    for (const SubvolumeRecord& s : *subvols) {
      if (s.path == path) id = s.id;
    }
    EXPECT_NE(id, 0u) << path;
    int64_t rows = 0;
    absl::StatusOr<std::map<std::string, IndexedFile>> contents = IndexContents(index_.get());
    // Count rows, not implied copies: FindFilesByInode per on-disk inode of the path.
    for (const auto& [p, f] : OnDisk()) {
      if (p.rfind(path + "/", 0) != 0) continue;
      absl::StatusOr<std::vector<FileRecord>> found = index_->FindFilesByInode(id, std::get<0>(f));
      EXPECT_TRUE(found.ok());
      rows += static_cast<int64_t>(found->size());
    }
    return rows;
  }

  VolumeConfig config_;
  FakeClock clock_;
  std::unique_ptr<VolumeIndex> index_;
  std::unique_ptr<RealVolumeFs> fs_;
};

TEST_F(SnapshotScanBtrfsTest, SnapshotsOfAnUnchangedSubvolumeAddNoRows) {
  for (int i = 0; i < 8; ++i) ASSERT_OK(Write(absl::StrCat("data/f", i), 9000 + i, i));
  ASSERT_EQ(mkdir(Path("data/d").c_str(), 0755), 0);
  ASSERT_OK(Write("data/d/g", 20000, 50));
  ASSERT_OK(Scan());
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/1")}));
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/2")}));

  ASSERT_OK_AND_ASSIGN(ScanReport report, Scan());

  EXPECT_EQ(report.subvolumes_added, 2);
  EXPECT_EQ(report.files_added, 0);
  EXPECT_EQ(RowsUnder("snaps/1"), 0);
  EXPECT_EQ(RowsUnder("snaps/2"), 0);
  EXPECT_EQ(Indexed(), OnDisk());
  EXPECT_EQ(Indexed().count("snaps/2/d/g"), 1u);
}

TEST_F(SnapshotScanBtrfsTest, UnchangedReadOnlySnapshotsAreLeftAloneUntilTheyMove) {
  for (int i = 0; i < 4; ++i) ASSERT_OK(Write(absl::StrCat("data/f", i), 9000 + i, i));
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/1")}));
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/2")}));
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/3")}));
  ASSERT_OK(Scan());

  // Nothing moved: the three read-only snapshots are not looked at again.
  ASSERT_OK_AND_ASSIGN(const ScanReport again, Scan());
  EXPECT_EQ(again.subvolumes_unchanged, 3);

  // One of them made writable, written to and made read-only again: its generation
  // moved, so it is compared again and the index follows.
  ASSERT_OK(Btrfs({"property", "set", Path("snaps/2"), "ro", "false"}));
  ASSERT_OK(Write("snaps/2/f1", 12000, 77));
  ASSERT_OK(Write("snaps/2/new", 15000, 78));
  ASSERT_OK(Sync());
  ASSERT_OK(Btrfs({"property", "set", Path("snaps/2"), "ro", "true"}));
  ASSERT_OK_AND_ASSIGN(ScanReport report, Scan());

  EXPECT_EQ(report.subvolumes_unchanged, 2);
  EXPECT_EQ(Indexed(), OnDisk());
  EXPECT_EQ(std::get<1>(Indexed()["snaps/2/f1"]), 12000u);
}

TEST_F(SnapshotScanBtrfsTest, ChangesOnBothSidesOfAWritableSnapshotGetRows) {
  for (int i = 0; i < 6; ++i) ASSERT_OK(Write(absl::StrCat("data/f", i), 9000 + i, i));
  ASSERT_EQ(mkdir(Path("data/d").c_str(), 0755), 0);
  for (int i = 0; i < 4; ++i) ASSERT_OK(Write(absl::StrCat("data/d/g", i), 12000 + i, 20 + i));
  ASSERT_OK(Scan());
  ASSERT_OK(Btrfs({"subvolume", "snapshot", Path("data"), Path("snaps/w")}));  // writable
  // After the snapshot, before btrdupd sees it: the source and the snapshot change.
  ASSERT_OK(Write("data/f0", 9000, 99));                                  // rewritten in the source
  ASSERT_EQ(unlink(Path("data/f1").c_str()), 0);               // deleted in the source
  ASSERT_EQ(rename(Path("data/d").c_str(), Path("data/e").c_str()), 0);  // dir renamed
  ASSERT_OK(Write("data/new", 15000, 7));                                 // new in the source
  ASSERT_OK(Write("snaps/w/f2", 9002, 77));                    // rewritten in the snapshot
  ASSERT_EQ(unlink(Path("snaps/w/f3").c_str()), 0);            // deleted in the snapshot
  ASSERT_OK(Write("snaps/w/own", 16000, 8));                              // new in the snapshot

  ASSERT_OK(Scan());
  EXPECT_EQ(Indexed(), OnDisk());
  EXPECT_LE(RowsUnder("snaps/w"), 8);  // f0, f1, f2, own, and d/* (renamed in the source)

  // Later changes on both sides are followed too.
  ASSERT_OK(Write("data/f4", 9004, 44));
  ASSERT_OK(Write("snaps/w/f5", 9005, 55));
  ASSERT_EQ(unlink(Path("snaps/w/own").c_str()), 0);
  ASSERT_OK(Write("snaps/w/d/g0", 12000, 66));
  clock_.Advance(absl::Minutes(1));
  ASSERT_OK(Scan());
  EXPECT_EQ(Indexed(), OnDisk());
}

TEST_F(SnapshotScanBtrfsTest, SnapshotOfASnapshotAndRotation) {
  for (int i = 0; i < 5; ++i) ASSERT_OK(Write(absl::StrCat("data/f", i), 9000 + i, i));
  ASSERT_OK(Scan());
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("data"), Path("snaps/1")}));
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("snaps/1"), Path("snaps/1b")}));
  ASSERT_OK(Scan());
  EXPECT_EQ(Indexed(), OnDisk());
  EXPECT_EQ(RowsUnder("snaps/1b"), 0);

  ASSERT_OK(Write("data/f0", 9000, 90));  // the snapshots keep the old f0
  ASSERT_OK(Scan());
  EXPECT_EQ(Indexed(), OnDisk());

  ASSERT_OK(
      Btrfs({"subvolume", "delete", Path("snaps/1")}));  // rotation of the snapshot in between
  ASSERT_OK(Btrfs({"subvolume", "sync", mount_path()}));
  ASSERT_OK(Scan());
  EXPECT_EQ(Indexed(), OnDisk());
  EXPECT_LE(RowsUnder("snaps/1b"), 1);  // its old f0 only
}

}  // namespace
}  // namespace btrdupd
