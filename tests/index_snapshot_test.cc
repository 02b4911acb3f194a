// VolumeIndex snapshot links (core/index.h, "Snapshots") on a real SQLite file: implied
// copies, rows handed over before a source row changes or goes, snapshots removed, and
// the migration of a version-2 database.

#include <sqlite3.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/index.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr uint64_t kSource = 256;
constexpr uint64_t kSnapA = 257;
constexpr uint64_t kSnapB = 258;
constexpr uint64_t kSourceGen = 100;

class IndexSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    path_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/snap-index-", getpid(), "-",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                         ".db");
    unlink(path_.c_str());
    absl::StatusOr<std::unique_ptr<VolumeIndex>> opened = VolumeIndex::Open(path_);
    ASSERT_TRUE(opened.ok()) << opened.status();
    index_ = std::move(*opened);
    ASSERT_OK(AddSubvolume(kSource, "data"));
    ASSERT_OK(AddSubvolume(kSnapA, "snaps/a"));
    ASSERT_OK(AddSubvolume(kSnapB, "snaps/b"));
  }
  void TearDown() override {
    index_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((path_ + suffix).c_str());
  }

  absl::Status AddSubvolume(uint64_t id, const std::string& path) {
    SubvolumeRecord record;
    record.id = id;
    record.path = path;
    record.uuid = absl::StrCat("uuid-", id);
    RETURN_IF_ERROR(index_->UpsertSubvolume(record));
    return index_->EnsureDir(path, id, 256).status();
  }

  // A file of subvolume `subvol` at `path` (relative to the volume), fully hashed.
  int64_t AddFile(uint64_t subvol, const std::string& path, uint64_t ino, uint64_t gen,
                  const std::string& hash = std::string(32, 'h')) {
    const size_t slash = path.rfind('/');
    absl::StatusOr<int64_t> dir = index_->EnsureDir(path.substr(0, slash), subvol, 0);
    EXPECT_TRUE(dir.ok());
    FileObservation seen;
    seen.subvol_id = subvol;
    seen.ino = ino;
    seen.size = 10000;
    seen.mtime_ns = 1;
    seen.generation = gen;
    absl::StatusOr<int64_t> id =
        index_->ObserveFile(*dir, path.substr(slash + 1), seen, absl::Now(), policy_);
    EXPECT_TRUE(id.ok()) << id.status();
    EXPECT_TRUE(index_->SetHash(*id, HashState::kFull, hash).ok());
    return *id;
  }

  std::vector<std::string> CopyPaths(int64_t file_id) {
    absl::StatusOr<std::optional<FileRecord>> file = index_->GetFile(file_id);
    EXPECT_TRUE(file.ok() && file->has_value());
    absl::StatusOr<std::vector<ImpliedCopy>> copies = index_->ImpliedCopies(**file);
    EXPECT_TRUE(copies.ok()) << copies.status();
    std::vector<std::string> out;
    for (const ImpliedCopy& c : *copies) out.push_back(c.path);
    return out;
  }

  std::vector<std::string> RowsOf(uint64_t subvol) {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<FileRecord>> files = index_->FilesOfSize(10000);
    EXPECT_TRUE(files.ok());
    for (const FileRecord& f : *files) {
      if (f.subvol_id == subvol) out.push_back(f.path);
    }
    return out;
  }

  std::string path_;
  std::unique_ptr<VolumeIndex> index_;
  StabilityPolicy policy_;
};

TEST_F(IndexSnapshotTest, LinkedSnapshotHasNoRowsAndItsCopiesAreImplied) {
  const int64_t f = AddFile(kSource, "data/d/f", 300, 50);
  const int64_t later = AddFile(kSource, "data/d/later", 301, kSourceGen + 1);
  ASSERT_TRUE(index_->SetSnapshotSource(kSnapA, kSource, kSourceGen).ok());
  ASSERT_TRUE(index_->SetSnapshotSource(kSnapB, kSource, kSourceGen).ok());
  ASSERT_TRUE(index_->MarkSnapshotDiffers(kSnapB, 300).ok());

  EXPECT_THAT(CopyPaths(f), ElementsAre("snaps/a/d/f"));  // b differs there
  EXPECT_THAT(CopyPaths(later), IsEmpty());                // written after the link
  EXPECT_THAT(RowsOf(kSnapA), IsEmpty());
  absl::StatusOr<std::vector<SubvolumeRecord>> subvols = index_->ListSubvolumes();
  ASSERT_TRUE(subvols.ok());
  EXPECT_EQ((*subvols)[1].source_id, kSource);
  EXPECT_EQ((*subvols)[1].source_generation, kSourceGen);
}

TEST_F(IndexSnapshotTest, ChangedSourceRowHandsItsOldStateToTheSnapshotFirst) {
  const int64_t f = AddFile(kSource, "data/d/f", 300, 50, std::string(32, 'o'));
  ASSERT_TRUE(index_->SetSnapshotSource(kSnapA, kSource, kSourceGen).ok());

  absl::StatusOr<std::optional<int64_t>> dir = index_->FindDirByInode(kSource, 256);
  FileObservation seen;
  seen.subvol_id = kSource;
  seen.ino = 300;
  seen.size = 10000;
  seen.mtime_ns = 2;  // rewritten
  seen.generation = kSourceGen + 5;
  absl::StatusOr<std::optional<FileRecord>> before = index_->GetFile(f);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(index_->ObserveFile((*before)->dir_id, "f", seen, absl::Now(), policy_).ok());

  ASSERT_THAT(RowsOf(kSnapA), ElementsAre("snaps/a/d/f"));
  absl::StatusOr<std::vector<FileRecord>> copy = index_->FindFilesByInode(kSnapA, 300);
  ASSERT_TRUE(copy.ok());
  ASSERT_EQ(copy->size(), 1u);
  EXPECT_EQ((*copy)[0].mtime_ns, 1);  // the old version
  EXPECT_EQ((*copy)[0].hash_state, HashState::kFull);
  EXPECT_EQ((*copy)[0].hash, std::string(32, 'o'));
  EXPECT_EQ((*copy)[0].dedupe_state, DedupeState::kPending);
  EXPECT_THAT(CopyPaths(f), IsEmpty());  // the new version is not in the snapshot
}

TEST_F(IndexSnapshotTest, RemovedSourceFileAndDirectoryStayInTheSnapshot) {
  const int64_t f = AddFile(kSource, "data/d/f", 300, 50);
  AddFile(kSource, "data/e/g", 301, 50);
  ASSERT_TRUE(index_->SetSnapshotSource(kSnapA, kSource, kSourceGen).ok());

  ASSERT_TRUE(index_->RemoveFile(f).ok());
  absl::StatusOr<std::optional<FileRecord>> g = index_->GetFile(f + 1);
  ASSERT_TRUE(g.ok() && g->has_value());
  ASSERT_TRUE(index_->RemoveDir((*g)->dir_id).ok());

  EXPECT_THAT(RowsOf(kSnapA), UnorderedElementsAre("snaps/a/d/f", "snaps/a/e/g"));
  EXPECT_THAT(RowsOf(kSource), IsEmpty());
}

TEST_F(IndexSnapshotTest, RemovingASnapshotHandsItsDifferencesToTheSnapshotsOfIt) {
  // b is a snapshot of a, which is a snapshot of data.
  const int64_t f = AddFile(kSource, "data/d/f", 300, 50);
  const int64_t g = AddFile(kSource, "data/d/g", 301, 50);
  ASSERT_TRUE(index_->SetSnapshotSource(kSnapA, kSource, kSourceGen).ok());
  ASSERT_TRUE(index_->MarkSnapshotDiffers(kSnapA, 301).ok());  // a's g is its own file
  AddFile(kSnapA, "snaps/a/d/g", 301, 40, std::string(32, 'a'));
  ASSERT_TRUE(index_->SetSnapshotSource(kSnapB, kSnapA, 60).ok());
  EXPECT_THAT(CopyPaths(f), UnorderedElementsAre("snaps/a/d/f", "snaps/b/d/f"));
  EXPECT_THAT(CopyPaths(g), IsEmpty());

  ASSERT_TRUE(index_->RemoveSubvolume(kSnapA).ok());

  EXPECT_THAT(CopyPaths(f), ElementsAre("snaps/b/d/f"));  // now straight from data
  EXPECT_THAT(RowsOf(kSnapB), ElementsAre("snaps/b/d/g"));  // a's own file, handed down
  absl::StatusOr<std::vector<SubvolumeRecord>> subvols = index_->ListSubvolumes();
  ASSERT_TRUE(subvols.ok());
  ASSERT_EQ(subvols->size(), 2u);
  EXPECT_EQ((*subvols)[1].source_id, kSource);
}

TEST_F(IndexSnapshotTest, RemovingTheReferenceSnapshotReleasesItsGroup) {
  const int64_t live = AddFile(kSource, "data/d/f", 300, kSourceGen + 3);
  ASSERT_TRUE(index_->SetSnapshotSource(kSnapA, kSource, kSourceGen).ok());
  ASSERT_TRUE(index_->MarkSnapshotDiffers(kSnapA, 300).ok());
  const int64_t old = AddFile(kSnapA, "snaps/a/d/f", 300, 40);
  ASSERT_TRUE(index_->SetDedupeState(old, DedupeState::kReference, 0).ok());
  ASSERT_TRUE(index_->SetDedupeState(live, DedupeState::kDeduped, old).ok());

  ASSERT_TRUE(index_->RemoveSubvolume(kSnapA).ok());

  absl::StatusOr<std::optional<FileRecord>> after = index_->GetFile(live);
  ASSERT_TRUE(after.ok() && after->has_value());
  EXPECT_EQ((*after)->dedupe_state, DedupeState::kPending);
  EXPECT_EQ((*after)->reference_id, 0);
}

TEST_F(IndexSnapshotTest, VersionTwoDatabaseIsMigratedWithItsRows) {
  const int64_t f = AddFile(kSource, "data/d/f", 300, 50);
  index_.reset();
  // Back to what a version-2 btrdupd wrote.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "ALTER TABLE files DROP COLUMN ctime_delta; "
                         "ALTER TABLE files DROP COLUMN shared_at; "
                         "DROP TABLE snap_diff; DROP INDEX subvols_by_source; "
                         "ALTER TABLE subvols DROP COLUMN source; "
                         "ALTER TABLE subvols DROP COLUMN source_gen; PRAGMA user_version=2;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);

  absl::StatusOr<std::unique_ptr<VolumeIndex>> opened = VolumeIndex::Open(path_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  index_ = std::move(*opened);
  absl::StatusOr<std::optional<FileRecord>> file = index_->GetFile(f);
  ASSERT_TRUE(file.ok() && file->has_value());
  EXPECT_EQ((*file)->path, "data/d/f");
  ASSERT_TRUE(index_->SetSnapshotSource(kSnapA, kSource, kSourceGen).ok());
  EXPECT_THAT(CopyPaths(f), ElementsAre("snaps/a/d/f"));
}

}  // namespace
}  // namespace btrdupd
