// VolumeIndex (core/index.h) on a real SQLite file in the test's temp dir: schema and
// versions, paths, the stability schedule, work queues, states, statistics, crash
// consistency.

#include "core/index.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "ioctl/errno_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/raw_database.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr uint64_t kTop = 5;  // the top-level subvolume's id

using ::btrdupd::testing::Exists;
using ::btrdupd::testing::RawQuery;
using ::btrdupd::testing::ReadBytes;

FileObservation Seen(uint64_t ino, uint64_t size, int64_t mtime_ns = 1000,
                     uint64_t generation = 7, uint64_t subvol = kTop) {
  FileObservation o;
  o.subvol_id = subvol;
  o.ino = ino;
  o.size = size;
  o.mtime_ns = mtime_ns;
  o.generation = generation;
  return o;
}

class IndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string dir_template = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/index.XXXXXX");
    ASSERT_NE(mkdtemp(dir_template.data()), nullptr);
    dir_ = dir_template;
    path_ = dir_ + "/btrdupd.db";
    policy_.initial_wait = absl::Minutes(5);
    policy_.max_backoff = absl::Hours(1);
  }

  std::unique_ptr<VolumeIndex> MustOpen() {
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(path_);
    EXPECT_TRUE(index.ok()) << index.status();
    return index.ok() ? std::move(*index) : nullptr;
  }

  std::string dir_;
  std::string path_;
  FakeClock clock_{absl::FromUnixSeconds(1700000000)};
  StabilityPolicy policy_;
};

// --- Schema and versions ---

TEST_F(IndexTest, CreatesStampedSchemaAndKeepsDataAcrossReopen) {
  {
    std::unique_ptr<VolumeIndex> index = MustOpen();
    ASSERT_NE(index, nullptr);
    ASSERT_OK(index->SetMeta("last_full_scan", "1700000000"));
  }
  EXPECT_THAT(RawQuery(path_, "PRAGMA user_version"), ElementsAre(absl::StrCat(kIndexSchemaVersion)));
  EXPECT_THAT(RawQuery(path_, "PRAGMA application_id"),
              ElementsAre(absl::StrCat(0x62747264)));
  EXPECT_THAT(RawQuery(path_, "PRAGMA journal_mode"), ElementsAre("delete"));
  // A raw connection sees the default mode (a rollback journal is not stamped in the
  // file as WAL is): what matters is that no WAL or shared-memory file exists.
  EXPECT_FALSE(Exists(path_ + "-wal"));
  EXPECT_FALSE(Exists(path_ + "-shm"));
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> value, index->GetMeta("last_full_scan"));
  EXPECT_EQ(value, "1700000000");
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> missing, index->GetMeta("nope"));
  EXPECT_FALSE(missing.has_value());
  ASSERT_OK(index->SetMeta("last_full_scan", "1800000000"));
  ASSERT_OK_AND_ASSIGN(value, index->GetMeta("last_full_scan"));
  EXPECT_EQ(value, "1800000000");
}

TEST_F(IndexTest, RefusesNewerSchemaVersionAndLeavesFileByteForByteUnchanged) {
  RawQuery(path_,
           absl::StrCat("PRAGMA application_id=", 0x62747264, "; PRAGMA user_version=99;"
           "CREATE TABLE future(x); INSERT INTO future VALUES (42);"));
  const std::string before = ReadBytes(path_);
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(path_);
  ASSERT_FALSE(index.ok());
  EXPECT_EQ(index.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(index.status().message()), HasSubstr("schema version 99"));
  EXPECT_THAT(std::string(index.status().message()), HasSubstr(path_));
  EXPECT_THAT(std::string(index.status().message()), HasSubstr("not changed"));
  EXPECT_EQ(ReadBytes(path_), before);
  EXPECT_FALSE(Exists(path_ + "-wal"));
}

TEST_F(IndexTest, RefusesSqliteDatabaseOfSomeoneElse) {
  RawQuery(path_, "CREATE TABLE photos(name TEXT); INSERT INTO photos VALUES ('cat');");
  const std::string before = ReadBytes(path_);
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(path_);
  ASSERT_FALSE(index.ok());
  EXPECT_EQ(index.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(index.status().message()), HasSubstr("not a btrdupd index"));
  EXPECT_THAT(std::string(index.status().message()), HasSubstr("photos"));
  EXPECT_EQ(ReadBytes(path_), before);

  const std::string other = dir_ + "/other.db";
  RawQuery(other, "PRAGMA application_id=1234; CREATE TABLE t(x);");
  index = VolumeIndex::Open(other);
  EXPECT_TRUE(absl::IsFailedPrecondition(index.status())) << index.status();
  EXPECT_THAT(std::string(index.status().message()), HasSubstr("another application"));
}

TEST_F(IndexTest, FileThatIsNotSqliteIsDataLossAndLeftUnchanged) {
  {
    std::ofstream out(path_, std::ios::binary);
    out << std::string(4096, 'x') << "my precious notes\n";
  }
  const std::string before = ReadBytes(path_);
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(path_);
  ASSERT_FALSE(index.ok());
  // DataLoss: a damaged index (the daemon sets it aside and rebuilds), unlike a
  // database of another application or a newer btrdupd (FailedPrecondition: refused).
  EXPECT_EQ(index.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(index.status().message()), HasSubstr("not an SQLite database"));
  EXPECT_EQ(ReadBytes(path_), before);
}

TEST_F(IndexTest, RefusesSymlinkInPlaceOfTheDatabase) {
  const std::string target = dir_ + "/elsewhere.db";
  ASSERT_EQ(symlink(target.c_str(), path_.c_str()), 0);
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(path_);
  EXPECT_TRUE(absl::IsFailedPrecondition(index.status())) << index.status();
  EXPECT_EQ(ErrnoOf(index.status()), ELOOP);
  EXPECT_THAT(std::string(index.status().message()), HasSubstr(path_));
  EXPECT_FALSE(Exists(target));
}

TEST_F(IndexTest, MissingDirectoryIsAClearError) {
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index =
      VolumeIndex::Open(dir_ + "/no/such/dir/btrdupd.db");
  EXPECT_TRUE(absl::IsNotFound(index.status())) << index.status();
  EXPECT_EQ(ErrnoOf(index.status()), ENOENT);
  EXPECT_THAT(std::string(index.status().message()), HasSubstr("/no/such/dir/btrdupd.db"));
}

TEST_F(IndexTest, InitializesVersionZeroDatabaseWithoutTables) {
  // A pre-existing but empty SQLite file (stamped 0, no tables): migrated to v1.
  RawQuery(path_, "PRAGMA user_version=0; CREATE TABLE t(x); DROP TABLE t;");
  ASSERT_TRUE(Exists(path_));
  {
    std::unique_ptr<VolumeIndex> index = MustOpen();
    ASSERT_NE(index, nullptr);
    ASSERT_OK_AND_ASSIGN(int64_t root, index->EnsureDir("", kTop, 256));
    EXPECT_EQ(root, 1);
  }
  EXPECT_THAT(RawQuery(path_, "PRAGMA user_version"), ElementsAre(absl::StrCat(kIndexSchemaVersion)));
  EXPECT_THAT(RawQuery(path_, "SELECT count(*) FROM files"), ElementsAre("0"));
}

TEST_F(IndexTest, EmptyFileIsInitialized) {
  { std::ofstream out(path_); }
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  EXPECT_THAT(RawQuery(path_, "PRAGMA user_version"), ElementsAre(absl::StrCat(kIndexSchemaVersion)));
}

// --- Paths ---

TEST_F(IndexTest, NamesWithAnyByteButSlashAndNulRoundTrip) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  const std::string dir_path = "with space/new\nline/\xff\xfe invalid utf8";
  ASSERT_OK_AND_ASSIGN(int64_t dir, index->EnsureDir(dir_path, kTop, 300));
  ASSERT_OK_AND_ASSIGN(std::string back, index->DirPath(dir));
  EXPECT_EQ(back, dir_path);

  const std::vector<std::string> names = {"a b", "new\nline", "\x80\xc3(bad",
                                          "'; DROP TABLE files; --", "tab\there", "x"};
  std::vector<int64_t> ids;
  for (size_t i = 0; i < names.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(int64_t id, index->ObserveFile(dir, names[i], Seen(1000 + i, 9000),
                                                        clock_.Now(), policy_));
    ids.push_back(id);
  }
  for (size_t i = 0; i < names.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> f, index->GetFile(ids[i]));
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->path, dir_path + "/" + names[i]);
    ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> by_name, index->FindFile(dir, names[i]));
    ASSERT_TRUE(by_name.has_value());
    EXPECT_EQ(by_name->id, ids[i]);
  }
  ASSERT_OK_AND_ASSIGN(std::vector<DirEntryRecord> entries, index->ListDir(dir));
  std::vector<std::string> listed;
  for (const DirEntryRecord& e : entries) listed.push_back(e.name);
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(listed, sorted);

  // Files in the root have no leading '/'.
  ASSERT_OK_AND_ASSIGN(int64_t top, index->ObserveFile(1, "top file", Seen(5, 9000),
                                                       clock_.Now(), policy_));
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> f, index->GetFile(top));
  EXPECT_EQ(f->path, "top file");

  for (const std::string& bad : {std::string(""), std::string("a/b"), std::string("a\0b", 3),
                                 std::string("."), std::string("..")}) {
    EXPECT_EQ(index->ObserveFile(dir, bad, Seen(1, 9000), clock_.Now(), policy_)
                  .status()
                  .code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(index->EnsureDir("a//b", kTop, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index->EnsureDir("/a", kTop, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(IndexTest, EnsureDirIsIdempotentAndFindsByInode) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  ASSERT_OK_AND_ASSIGN(int64_t c, index->EnsureDir("a/b/c", kTop, 303));
  ASSERT_OK_AND_ASSIGN(int64_t c_again, index->EnsureDir("a/b/c", kTop, 303));
  EXPECT_EQ(c, c_again);
  ASSERT_OK_AND_ASSIGN(int64_t b, index->EnsureDir("a/b", kTop, 302));
  ASSERT_OK_AND_ASSIGN(std::string b_path, index->DirPath(b));
  EXPECT_EQ(b_path, "a/b");
  ASSERT_OK_AND_ASSIGN(std::optional<int64_t> found, index->FindDirByInode(kTop, 303));
  EXPECT_EQ(found, c);
  ASSERT_OK_AND_ASSIGN(found, index->FindDirByInode(kTop, 302));
  EXPECT_EQ(found, b);
  ASSERT_OK_AND_ASSIGN(found, index->FindDirByInode(kTop, 999));
  EXPECT_FALSE(found.has_value());
  ASSERT_OK_AND_ASSIGN(found, index->FindDirByInode(256, 303));
  EXPECT_FALSE(found.has_value());
  // A directory replaced by another inode under the same name keeps its id.
  ASSERT_OK_AND_ASSIGN(int64_t c_new, index->EnsureDir("a/b/c", kTop, 404));
  EXPECT_EQ(c_new, c);
  ASSERT_OK_AND_ASSIGN(found, index->FindDirByInode(kTop, 404));
  EXPECT_EQ(found, c);
  EXPECT_EQ(index->DirPath(12345).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(IndexTest, RemoveDirRemovesSubtreeAndItsFilesOnly) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  ASSERT_OK_AND_ASSIGN(int64_t a, index->EnsureDir("a", kTop, 10));
  ASSERT_OK_AND_ASSIGN(int64_t ab, index->EnsureDir("a/b", kTop, 11));
  ASSERT_OK_AND_ASSIGN(int64_t abc, index->EnsureDir("a/b/c", kTop, 12));
  ASSERT_OK_AND_ASSIGN(int64_t keep, index->EnsureDir("keep", kTop, 13));
  for (int64_t d : {a, ab, abc, keep}) {
    for (int i = 0; i < 3; ++i) {
      ASSERT_OK(index->ObserveFile(d, absl::StrCat("f", i), Seen(d * 100 + i, 10000),
                                   clock_.Now(), policy_)
                    .status());
    }
  }
  ASSERT_OK_AND_ASSIGN(std::vector<DirEntryRecord> entries, index->ListDir(a));
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_TRUE(entries[0].is_dir);
  EXPECT_EQ(entries[0].name, "b");
  EXPECT_EQ(entries[0].id, ab);
  EXPECT_FALSE(entries[1].is_dir);

  ASSERT_OK(index->RemoveDir(a));
  ASSERT_OK_AND_ASSIGN(IndexStats stats, index->Stats(clock_.Now()));
  EXPECT_EQ(stats.files_tracked, 3);
  EXPECT_EQ(index->ListDir(ab).status().code(), absl::StatusCode::kNotFound);
  ASSERT_OK_AND_ASSIGN(std::optional<int64_t> gone, index->FindDirByInode(kTop, 12));
  EXPECT_FALSE(gone.has_value());
  ASSERT_OK_AND_ASSIGN(std::vector<DirEntryRecord> root, index->ListDir(1));
  ASSERT_EQ(root.size(), 1u);
  EXPECT_EQ(root[0].name, "keep");
  EXPECT_THAT(RawQuery(path_, "PRAGMA foreign_key_check"), ElementsAre());
}

// --- Stability ---

TEST_F(IndexTest, NewFileWaitsInitialWait) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  const absl::Time t0 = clock_.Now();
  ASSERT_OK_AND_ASSIGN(int64_t id, index->ObserveFile(1, "f", Seen(257, 10000, 123, 9),
                                                      t0, policy_));
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> f, index->GetFile(id));
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->first_seen, t0);
  EXPECT_EQ(f->last_changed, t0);
  EXPECT_EQ(f->next_eligible, t0 + absl::Minutes(5));
  EXPECT_EQ(f->backoff_level, 0);
  EXPECT_EQ(f->size, 10000u);
  EXPECT_EQ(f->ino, 257u);
  EXPECT_EQ(f->mtime_ns, 123);
  EXPECT_EQ(f->generation, 9u);
  EXPECT_EQ(f->subvol_id, kTop);
  EXPECT_EQ(f->hash_state, HashState::kNone);
  EXPECT_EQ(f->dedupe_state, DedupeState::kPending);
  EXPECT_EQ(f->reference_id, 0);
  EXPECT_EQ(f->skip_detail, "");
}

TEST_F(IndexTest, WaitStartsAtTheFilesOwnLastChange) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  const absl::Time t0 = clock_.Now();
  FileObservation old_file = Seen(257, 10000);
  old_file.last_change = t0 - absl::Hours(24);
  FileObservation recent = Seen(258, 10000);
  recent.last_change = t0 - absl::Minutes(1);
  FileObservation future = Seen(259, 10000);  // a clock set wrong: never later than now
  future.last_change = t0 + absl::Hours(1);
  ASSERT_OK_AND_ASSIGN(int64_t old_id, index->ObserveFile(1, "old", old_file, t0, policy_));
  ASSERT_OK_AND_ASSIGN(int64_t recent_id, index->ObserveFile(1, "recent", recent, t0, policy_));
  ASSERT_OK_AND_ASSIGN(int64_t future_id, index->ObserveFile(1, "future", future, t0, policy_));
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> f, index->GetFile(old_id));
  EXPECT_EQ(f->next_eligible, t0 - absl::Hours(24) + absl::Minutes(5));
  EXPECT_EQ(f->first_seen, t0);
  ASSERT_OK_AND_ASSIGN(f, index->GetFile(recent_id));
  EXPECT_EQ(f->next_eligible, t0 + absl::Minutes(4));
  ASSERT_OK_AND_ASSIGN(f, index->GetFile(future_id));
  EXPECT_EQ(f->next_eligible, t0 + absl::Minutes(5));
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> sizes, index->SizesWithWork(1, t0));
  EXPECT_THAT(sizes, ElementsAre(10000u));  // the old file is eligible at once
}

TEST_F(IndexTest, ChangeThatKeptItsTimesWaitsFromNowAndBacksOff) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  const absl::Time t0 = clock_.Now();
  FileObservation seen = Seen(257, 10000, 1000, 7);
  seen.last_change = t0 - absl::Hours(24);
  ASSERT_OK_AND_ASSIGN(int64_t id, index->ObserveFile(1, "f", seen, t0, policy_));
  // Rewritten with its times put back: only the generation says it changed.
  clock_.Advance(absl::Minutes(10));
  seen.generation = 8;
  ASSERT_OK(index->ObserveFile(1, "f", seen, clock_.Now(), policy_).status());
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> f, index->GetFile(id));
  EXPECT_EQ(f->backoff_level, 1);
  EXPECT_EQ(f->last_changed, clock_.Now());
  EXPECT_EQ(f->next_eligible, clock_.Now() + absl::Minutes(10));
  // Changed again two minutes ago, with honest times: the doubled wait runs from then.
  clock_.Advance(absl::Minutes(3));
  seen.generation = 9;
  seen.mtime_ns = 2000;
  seen.last_change = clock_.Now() - absl::Minutes(2);
  ASSERT_OK(index->ObserveFile(1, "f", seen, clock_.Now(), policy_).status());
  ASSERT_OK_AND_ASSIGN(f, index->GetFile(id));
  EXPECT_EQ(f->backoff_level, 2);
  EXPECT_EQ(f->next_eligible, clock_.Now() - absl::Minutes(2) + absl::Minutes(20));
}

TEST_F(IndexTest, UnchangedFileIsNotWritten) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  const absl::Time t0 = clock_.Now();
  ASSERT_OK_AND_ASSIGN(int64_t id, index->ObserveFile(1, "f", Seen(257, 10000), t0, policy_));
  ASSERT_OK(index->SetHash(id, HashState::kFull, std::string(32, 'h')));

  // A second connection sees PRAGMA data_version move only if someone commits.
  sqlite3* watcher = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &watcher), SQLITE_OK);
  auto data_version = [&]() {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(watcher, "PRAGMA data_version", -1, &stmt, nullptr);
    sqlite3_step(stmt);
    const int64_t v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
  };
  const int64_t before = data_version();
  clock_.Advance(absl::Hours(3));
  ASSERT_OK_AND_ASSIGN(int64_t again,
                       index->ObserveFile(1, "f", Seen(257, 10000), clock_.Now(), policy_));
  EXPECT_EQ(again, id);
  EXPECT_EQ(data_version(), before);
  sqlite3_close(watcher);

  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> f, index->GetFile(id));
  EXPECT_EQ(f->last_changed, t0);
  EXPECT_EQ(f->next_eligible, t0 + absl::Minutes(5));
  EXPECT_EQ(f->hash_state, HashState::kFull);
}

TEST_F(IndexTest, EachKindOfChangeRestartsTheWaitAndDropsTheHash) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  const std::vector<FileObservation> changes = {
      Seen(257, 20000), Seen(257, 20000, 2000), Seen(257, 20000, 2000, 8),
      Seen(300, 20000, 2000, 8), Seen(300, 20000, 2000, 8, 256)};
  ASSERT_OK_AND_ASSIGN(int64_t id,
                       index->ObserveFile(1, "f", Seen(257, 10000), clock_.Now(), policy_));
  for (const FileObservation& change : changes) {
    ASSERT_OK(index->SetHash(id, HashState::kFull, std::string(32, 'h')));
    ASSERT_OK(index->RecordSkip(id, SkipKind::kDedupeFailed, "busy", clock_.Now()));
    clock_.Advance(absl::Minutes(1));
    ASSERT_OK_AND_ASSIGN(int64_t same, index->ObserveFile(1, "f", change, clock_.Now(),
                                                          policy_));
    EXPECT_EQ(same, id);
    ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> f, index->GetFile(id));
    EXPECT_EQ(f->last_changed, clock_.Now());
    EXPECT_EQ(f->hash_state, HashState::kNone);
    EXPECT_EQ(f->hash, "");
    EXPECT_EQ(f->dedupe_state, DedupeState::kPending);
    EXPECT_EQ(f->skip_detail, "");
    EXPECT_EQ(f->size, change.size);
    EXPECT_EQ(f->ino, change.ino);
    EXPECT_EQ(f->subvol_id, change.subvol_id);
  }
}

TEST_F(IndexTest, RepeatedChangesDoubleTheWaitUpToTheCap) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  const absl::Time t0 = clock_.Now();
  ASSERT_OK_AND_ASSIGN(int64_t id, index->ObserveFile(1, "log", Seen(257, 10000, 0), t0,
                                                      policy_));
  // initial 5 min, cap 1 h: 10, 20, 40, 60, 60 minutes.
  const std::vector<int> expected_minutes = {10, 20, 40, 60, 60, 60};
  for (size_t i = 0; i < expected_minutes.size(); ++i) {
    clock_.Advance(absl::Minutes(3));  // still waiting: changes again
    ASSERT_OK(index->ObserveFile(1, "log", Seen(257, 10000, i + 1), clock_.Now(), policy_)
                  .status());
    ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> f, index->GetFile(id));
    EXPECT_EQ(f->backoff_level, static_cast<int>(i + 1));
    EXPECT_EQ(f->next_eligible, clock_.Now() + absl::Minutes(expected_minutes[i])) << i;
    EXPECT_EQ(f->first_seen, t0);
  }
  // A change after the wait ran out (but before processing) still doubles.
  clock_.Advance(absl::Hours(5));
  ASSERT_OK(index->ObserveFile(1, "log", Seen(257, 10000, 99), clock_.Now(), policy_)
                .status());
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> f, index->GetFile(id));
  EXPECT_EQ(f->backoff_level, 7);
  EXPECT_EQ(f->next_eligible, clock_.Now() + absl::Hours(1));

  // A huge level never overflows the wait.
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK(index->ObserveFile(1, "log", Seen(257, 10000, 1000 + i), clock_.Now(), policy_)
                  .status());
  }
  ASSERT_OK_AND_ASSIGN(f, index->GetFile(id));
  EXPECT_EQ(f->next_eligible, clock_.Now() + absl::Hours(1));
}

TEST_F(IndexTest, BackoffLevelResetsOnceTheFileIsProcessed) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  ASSERT_OK_AND_ASSIGN(int64_t id,
                       index->ObserveFile(1, "f", Seen(257, 10000, 0), clock_.Now(), policy_));
  for (int i = 1; i <= 3; ++i) {
    ASSERT_OK(index->ObserveFile(1, "f", Seen(257, 10000, i), clock_.Now(), policy_).status());
  }
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> f, index->GetFile(id));
  EXPECT_EQ(f->backoff_level, 3);
  // A prefix hash is not "processed".
  ASSERT_OK(index->SetHash(id, HashState::kPrefix, "p"));
  ASSERT_OK_AND_ASSIGN(f, index->GetFile(id));
  EXPECT_EQ(f->backoff_level, 3);
  ASSERT_OK(index->SetHash(id, HashState::kFull, std::string(32, 'h')));
  ASSERT_OK_AND_ASSIGN(f, index->GetFile(id));
  EXPECT_EQ(f->backoff_level, 0);
  // The next change waits 2 * initial again, not 16 *.
  ASSERT_OK(index->ObserveFile(1, "f", Seen(257, 10000, 50), clock_.Now(), policy_).status());
  ASSERT_OK_AND_ASSIGN(f, index->GetFile(id));
  EXPECT_EQ(f->backoff_level, 1);
  EXPECT_EQ(f->next_eligible, clock_.Now() + absl::Minutes(10));
  // SetDedupeState to a final state also resets it.
  ASSERT_OK(index->SetDedupeState(id, DedupeState::kReference, 0));
  ASSERT_OK_AND_ASSIGN(f, index->GetFile(id));
  EXPECT_EQ(f->backoff_level, 0);
}

TEST_F(IndexTest, InvalidateFileForgetsHashAndWaitsLonger) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  ASSERT_OK_AND_ASSIGN(int64_t ref, index->ObserveFile(1, "ref", Seen(257, 10000),
                                                       clock_.Now(), policy_));
  ASSERT_OK_AND_ASSIGN(int64_t dup, index->ObserveFile(1, "dup", Seen(258, 10000),
                                                       clock_.Now(), policy_));
  const std::string hash(32, '\x01');
  ASSERT_OK(index->SetHash(ref, HashState::kFull, hash));
  ASSERT_OK(index->SetHash(dup, HashState::kFull, hash));
  ASSERT_OK(index->SetDedupeState(ref, DedupeState::kReference, 0));
  ASSERT_OK(index->SetDedupeState(dup, DedupeState::kDeduped, ref));
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> d, index->GetFile(dup));
  EXPECT_EQ(d->hash, hash);
  EXPECT_EQ(d->reference_id, ref);

  clock_.Advance(absl::Minutes(30));
  ASSERT_OK(index->InvalidateFile(ref, clock_.Now(), policy_));
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> r, index->GetFile(ref));
  EXPECT_EQ(r->hash_state, HashState::kNone);
  EXPECT_EQ(r->hash, "");
  EXPECT_EQ(r->dedupe_state, DedupeState::kPending);
  EXPECT_EQ(r->backoff_level, 1);
  EXPECT_EQ(r->last_changed, clock_.Now());
  EXPECT_EQ(r->next_eligible, clock_.Now() + absl::Minutes(10));
  // Its dependent lost its reference and is re-planned, keeping its hash.
  ASSERT_OK_AND_ASSIGN(d, index->GetFile(dup));
  EXPECT_EQ(d->dedupe_state, DedupeState::kPending);
  EXPECT_EQ(d->reference_id, 0);
  EXPECT_EQ(d->hash, hash);

  EXPECT_EQ(index->InvalidateFile(9999, clock_.Now(), policy_).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(index->SetHash(9999, HashState::kFull, hash).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(index->SetHash(ref, HashState::kFull, "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index->SetDedupeState(9999, DedupeState::kDeduped, 1).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(IndexTest, RemovingAReferenceReleasesItsDependents) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  ASSERT_OK_AND_ASSIGN(int64_t ref, index->ObserveFile(1, "ref", Seen(257, 10000),
                                                       clock_.Now(), policy_));
  ASSERT_OK_AND_ASSIGN(int64_t dup, index->ObserveFile(1, "dup", Seen(258, 10000),
                                                       clock_.Now(), policy_));
  ASSERT_OK(index->SetDedupeState(ref, DedupeState::kReference, 0));
  ASSERT_OK(index->SetDedupeState(dup, DedupeState::kDeduped, ref));
  ASSERT_OK(index->RemoveFile(ref));
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> gone, index->GetFile(ref));
  EXPECT_FALSE(gone.has_value());
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> d, index->GetFile(dup));
  EXPECT_EQ(d->dedupe_state, DedupeState::kPending);
  EXPECT_EQ(d->reference_id, 0);
}

// --- Work queues ---

TEST_F(IndexTest, SizesWithWorkNeedTwoFilesAndOneEligiblePending) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  const absl::Time t0 = clock_.Now();
  uint64_t ino = 300;
  auto add = [&](const std::string& name, uint64_t size, absl::Time when) {
    absl::StatusOr<int64_t> id = index->ObserveFile(1, name, Seen(++ino, size), when, policy_);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or(0);
  };
  add("pair1", 10000, t0);
  add("pair2", 10000, t0);
  add("alone", 20000, t0);
  add("late1", 30000, t0 + absl::Minutes(4));
  add("late2", 30000, t0 + absl::Minutes(4));
  add("small1", 5000, t0);
  add("small2", 5000, t0);
  const int64_t done1 = add("done1", 40000, t0);
  const int64_t done2 = add("done2", 40000, t0);
  ASSERT_OK(index->SetDedupeState(done1, DedupeState::kReference, 0));
  ASSERT_OK(index->SetDedupeState(done2, DedupeState::kDeduped, done1));
  const int64_t half1 = add("half1", 50000, t0);
  add("half2", 50000, t0);
  ASSERT_OK(index->SetDedupeState(half1, DedupeState::kReference, 0));
  const int64_t uniq1 = add("uniq1", 70000, t0);
  const int64_t uniq2 = add("uniq2", 70000, t0);
  ASSERT_OK(index->SetDedupeState(uniq1, DedupeState::kUnique, 0));
  ASSERT_OK(index->SetDedupeState(uniq2, DedupeState::kUnique, 0));
  const int64_t skip1 = add("skip1", 60000, t0);
  const int64_t skip2 = add("skip2", 60000, t0);
  ASSERT_OK(index->RecordSkip(skip1, SkipKind::kNotPermitted, "EPERM", t0));
  ASSERT_OK(index->RecordSkip(skip2, SkipKind::kNotPermitted, "EPERM", t0));

  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> sizes, index->SizesWithWork(8192, t0));
  EXPECT_THAT(sizes, ElementsAre());
  ASSERT_OK_AND_ASSIGN(sizes, index->SizesWithWork(8192, t0 + absl::Minutes(5)));
  EXPECT_THAT(sizes, ElementsAre(10000, 50000));
  ASSERT_OK_AND_ASSIGN(sizes, index->SizesWithWork(8192, t0 + absl::Minutes(9)));
  EXPECT_THAT(sizes, ElementsAre(10000, 30000, 50000));
  ASSERT_OK_AND_ASSIGN(sizes, index->SizesWithWork(1, t0 + absl::Minutes(9)));
  EXPECT_THAT(sizes, ElementsAre(5000, 10000, 30000, 50000));

  // A new file of a kUnique size gives that size work again.
  add("uniq3", 70000, t0 + absl::Minutes(4));
  ASSERT_OK_AND_ASSIGN(sizes, index->SizesWithWork(8192, t0 + absl::Minutes(9)));
  EXPECT_THAT(sizes, ElementsAre(10000, 30000, 50000, 70000));

  ASSERT_OK_AND_ASSIGN(std::vector<FileRecord> files, index->FilesOfSize(40000));
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].path, "done1");
  EXPECT_EQ(files[1].path, "done2");
  EXPECT_EQ(files[1].reference_id, done1);
  ASSERT_OK_AND_ASSIGN(files, index->FilesOfSize(12345));
  EXPECT_TRUE(files.empty());
}

TEST_F(IndexTest, NextEligibleAfterGivesTheEarliestFutureTime) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  const absl::Time t0 = clock_.Now();
  ASSERT_OK_AND_ASSIGN(std::optional<absl::Time> next, index->NextEligibleAfter(t0));
  EXPECT_FALSE(next.has_value());
  ASSERT_OK(index->ObserveFile(1, "a", Seen(1, 10000), t0, policy_).status());
  ASSERT_OK(index->ObserveFile(1, "b", Seen(2, 10000), t0 + absl::Minutes(2), policy_)
                .status());
  ASSERT_OK_AND_ASSIGN(int64_t c, index->ObserveFile(1, "c", Seen(3, 10000),
                                                     t0 - absl::Minutes(1), policy_));
  ASSERT_OK(index->SetDedupeState(c, DedupeState::kDeduped, 0));
  ASSERT_OK_AND_ASSIGN(next, index->NextEligibleAfter(t0));
  EXPECT_EQ(next, t0 + absl::Minutes(5));
  ASSERT_OK_AND_ASSIGN(next, index->NextEligibleAfter(t0 + absl::Minutes(5)));
  EXPECT_EQ(next, t0 + absl::Minutes(7));
  ASSERT_OK_AND_ASSIGN(next, index->NextEligibleAfter(t0 + absl::Minutes(7)));
  EXPECT_FALSE(next.has_value());
}

TEST_F(IndexTest, EndStabilityWaitsMakesWaitingPendingFilesEligibleNow) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  const absl::Time t0 = clock_.Now();
  ASSERT_OK_AND_ASSIGN(int64_t a, index->ObserveFile(1, "a", Seen(1, 10000), t0, policy_));
  ASSERT_OK(index->ObserveFile(1, "a", Seen(1, 10000, 2), t0, policy_).status());  // level 1
  ASSERT_OK_AND_ASSIGN(int64_t b, index->ObserveFile(1, "b", Seen(2, 10000), t0, policy_));
  ASSERT_OK_AND_ASSIGN(int64_t done, index->ObserveFile(1, "c", Seen(3, 10000), t0, policy_));
  ASSERT_OK(index->RecordSkip(done, SkipKind::kNotPermitted, "EPERM", t0));
  ASSERT_OK_AND_ASSIGN(int64_t old, index->ObserveFile(1, "old", Seen(4, 10000),
                                                       t0 - absl::Hours(1), policy_));

  const absl::Time now = t0 + absl::Minutes(1);
  ASSERT_OK(index->EndStabilityWaits(now));
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> fa, index->GetFile(a));
  EXPECT_EQ(fa->next_eligible, now);
  EXPECT_EQ(fa->backoff_level, 1);
  EXPECT_EQ(fa->last_changed, t0);
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> fb, index->GetFile(b));
  EXPECT_EQ(fb->next_eligible, now);
  // Not pending: untouched. Already eligible: keeps its earlier time.
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> fc, index->GetFile(done));
  EXPECT_EQ(fc->next_eligible, t0 + absl::Minutes(5));
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> fo, index->GetFile(old));
  EXPECT_EQ(fo->next_eligible, t0 - absl::Hours(1) + absl::Minutes(5));
  ASSERT_OK_AND_ASSIGN(std::optional<absl::Time> next, index->NextEligibleAfter(now));
  EXPECT_FALSE(next.has_value());
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> sizes, index->SizesWithWork(8192, now));
  EXPECT_THAT(sizes, ElementsAre(10000));
}

TEST_F(IndexTest, FindFilesByInodeAcrossHardLinks) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  ASSERT_OK_AND_ASSIGN(int64_t d, index->EnsureDir("d", kTop, 260));
  ASSERT_OK(index->ObserveFile(1, "link1", Seen(500, 10000), clock_.Now(), policy_).status());
  ASSERT_OK(index->ObserveFile(d, "link2", Seen(500, 10000), clock_.Now(), policy_).status());
  ASSERT_OK(index->ObserveFile(d, "other", Seen(501, 10000), clock_.Now(), policy_).status());
  ASSERT_OK(index->ObserveFile(d, "snap", Seen(500, 10000, 1000, 7, 256), clock_.Now(),
                               policy_)
                .status());
  ASSERT_OK_AND_ASSIGN(std::vector<FileRecord> links, index->FindFilesByInode(kTop, 500));
  std::vector<std::string> paths;
  for (const FileRecord& f : links) paths.push_back(f.path);
  EXPECT_THAT(paths, UnorderedElementsAre("link1", "d/link2"));
}

// --- States and statistics ---

TEST_F(IndexTest, StatsCountFilesStatesGroupsAndBytes) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  const absl::Time t0 = clock_.Now();
  const std::string h1(32, '\x11'), h2(32, '\x22');
  std::vector<int64_t> ids;
  for (int i = 0; i < 8; ++i) {
    ASSERT_OK_AND_ASSIGN(int64_t id, index->ObserveFile(1, absl::StrCat("f", i),
                                                        Seen(300 + i, i < 4 ? 10000 : 20000),
                                                        t0, policy_));
    ids.push_back(id);
  }
  // Group 1: four files of 10000 bytes, same hash: ref, deduped, pending, pending.
  for (int i = 0; i < 4; ++i) ASSERT_OK(index->SetHash(ids[i], HashState::kFull, h1));
  ASSERT_OK(index->SetDedupeState(ids[0], DedupeState::kReference, 0));
  ASSERT_OK(index->SetDedupeState(ids[1], DedupeState::kDeduped, ids[0]));
  // Group 2: two files of 20000 with hash h2; one with a different hash; one skipped.
  ASSERT_OK(index->SetHash(ids[4], HashState::kFull, h2));
  ASSERT_OK(index->SetHash(ids[5], HashState::kFull, h2));
  ASSERT_OK(index->SetHash(ids[6], HashState::kFull, h1));
  ASSERT_OK(index->SetHash(ids[7], HashState::kPrefix, "prefix"));
  ASSERT_OK(index->RecordSkip(ids[7], SkipKind::kSwapfile, "swapfile", t0));

  ASSERT_OK_AND_ASSIGN(IndexStats stats, index->Stats(t0 + absl::Minutes(1)));
  EXPECT_EQ(stats.files_tracked, 8);
  EXPECT_EQ(stats.files_hashed, 7);
  EXPECT_EQ(stats.files_pending, 5);
  EXPECT_EQ(stats.files_waiting, 5);
  EXPECT_EQ(stats.duplicate_groups, 2);
  EXPECT_EQ(stats.files_deduped, 1);
  EXPECT_EQ(stats.files_skipped, 1);
  EXPECT_EQ(stats.bytes_deduped, 10000u);
  EXPECT_EQ(stats.bytes_saveable, 2 * 10000u + 20000u);
  EXPECT_GT(stats.database_bytes, 0);
  ASSERT_OK_AND_ASSIGN(stats, index->Stats(t0 + absl::Minutes(10)));
  EXPECT_EQ(stats.files_waiting, 0);

  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> skipped, index->GetFile(ids[7]));
  EXPECT_EQ(skipped->skip_kind, SkipKind::kSwapfile);
  EXPECT_EQ(skipped->skip_detail, "swapfile");

  // Forgetting dedupe states keeps hashes.
  ASSERT_OK(index->ResetDedupeStates());
  ASSERT_OK_AND_ASSIGN(stats, index->Stats(t0 + absl::Minutes(10)));
  EXPECT_EQ(stats.files_pending, 8);
  EXPECT_EQ(stats.files_deduped, 0);
  EXPECT_EQ(stats.files_skipped, 0);
  EXPECT_EQ(stats.files_hashed, 7);
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> d, index->GetFile(ids[1]));
  EXPECT_EQ(d->reference_id, 0);
  EXPECT_EQ(d->hash, h1);
  ASSERT_OK_AND_ASSIGN(skipped, index->GetFile(ids[7]));
  EXPECT_EQ(skipped->skip_detail, "");
}

TEST_F(IndexTest, SkippedByKindCountsEachKindAndListsTheMostRecentFirst) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  const absl::Time t0 = clock_.Now();
  ASSERT_OK_AND_ASSIGN(int64_t d, index->EnsureDir("d", kTop, 300));
  std::vector<int64_t> ids;
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(int64_t id, index->ObserveFile(d, absl::StrCat("f", i),
                                                        Seen(257 + i, 10000), t0, policy_));
    ids.push_back(id);
  }
  ASSERT_OK(index->RecordSkip(ids[0], SkipKind::kImmutable, "first", t0));
  ASSERT_OK(index->RecordSkip(ids[1], SkipKind::kImmutable, "second", t0 + absl::Minutes(1)));
  ASSERT_OK(index->RecordSkip(ids[2], SkipKind::kImmutable, "third", t0 + absl::Minutes(2)));
  ASSERT_OK(index->RecordSkip(ids[3], SkipKind::kHardLink, "link", t0));

  ASSERT_OK_AND_ASSIGN(std::vector<SkipKindSummary> kinds, index->SkippedByKind(2));
  ASSERT_EQ(kinds.size(), 2u);
  EXPECT_EQ(kinds[0].kind, SkipKind::kImmutable);
  EXPECT_EQ(kinds[0].files, 3);
  ASSERT_EQ(kinds[0].recent.size(), 2u);
  EXPECT_EQ(kinds[0].recent[0].path, "d/f2");
  EXPECT_EQ(kinds[0].recent[0].detail, "third");
  EXPECT_EQ(kinds[0].recent[0].skipped_at, t0 + absl::Minutes(2));
  EXPECT_EQ(kinds[0].recent[1].path, "d/f1");
  EXPECT_EQ(kinds[1].kind, SkipKind::kHardLink);
  EXPECT_EQ(kinds[1].files, 1);

  // A file no longer skipped leaves the summary.
  ASSERT_OK(index->SetDedupeState(ids[3], DedupeState::kPending, 0));
  ASSERT_OK_AND_ASSIGN(kinds, index->SkippedByKind(0));
  ASSERT_EQ(kinds.size(), 1u);
  EXPECT_TRUE(kinds[0].recent.empty());
}

TEST_F(IndexTest, Version1SkipsWithFreeTextGoBackToPendingKeepingTheirHash) {
  int64_t id = 0;
  {
    std::unique_ptr<VolumeIndex> index = MustOpen();
    ASSERT_NE(index, nullptr);
    ASSERT_OK_AND_ASSIGN(id, index->ObserveFile(1, "f", Seen(257, 10000), clock_.Now(),
                                                policy_));
    ASSERT_OK(index->SetHash(id, HashState::kFull, std::string(32, 'h')));
  }
  // What version 1 wrote: a skip as free text, no kind columns.
  RawQuery(path_,
           "DROP INDEX files_skipped; ALTER TABLE files DROP COLUMN ctime_delta; "
           "ALTER TABLE files DROP COLUMN shared_at; "
           "ALTER TABLE files DROP COLUMN skip_kind; ALTER TABLE files DROP COLUMN skip_at; "
           "UPDATE files SET dedupe_state = 3, skip = 'EPERM: refused'; "
           "DROP TABLE snap_diff; DROP INDEX subvols_by_source; "
           "ALTER TABLE subvols DROP COLUMN source; ALTER TABLE subvols DROP COLUMN source_gen; "
           "PRAGMA user_version = 1;");
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  EXPECT_THAT(RawQuery(path_, "PRAGMA user_version"),
              ElementsAre(absl::StrCat(kIndexSchemaVersion)));
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> f, index->GetFile(id));
  EXPECT_EQ(f->dedupe_state, DedupeState::kPending);
  EXPECT_EQ(f->skip_detail, "");
  EXPECT_EQ(f->hash, std::string(16, 'h'));  // cut to a file digest (version 5)
  ASSERT_OK_AND_ASSIGN(std::vector<SkipKindSummary> kinds, index->SkippedByKind(5));
  EXPECT_TRUE(kinds.empty());
}

TEST_F(IndexTest, VacuumKeepsEverything) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  ASSERT_OK_AND_ASSIGN(int64_t d, index->EnsureDir("d", kTop, 260));
  for (int i = 0; i < 500; ++i) {
    ASSERT_OK(index->ObserveFile(d, absl::StrCat("file_", i), Seen(1000 + i, 10000 + i),
                                 clock_.Now(), policy_)
                  .status());
  }
  ASSERT_OK(index->RemoveDir(d));
  ASSERT_OK(index->ObserveFile(1, "survivor", Seen(7, 10000), clock_.Now(), policy_).status());
  ASSERT_OK_AND_ASSIGN(IndexStats before, index->Stats(clock_.Now()));
  // The deleted rows' pages are free pages of the file until the VACUUM.
  ASSERT_OK_AND_ASSIGN(VolumeIndex::FileSpace space, index->Space());
  EXPECT_EQ(space.bytes, before.database_bytes);
  EXPECT_GT(space.free_bytes, 0);
  ASSERT_OK(index->Vacuum());
  ASSERT_OK_AND_ASSIGN(IndexStats after, index->Stats(clock_.Now()));
  EXPECT_EQ(after.files_tracked, 1);
  EXPECT_LT(after.database_bytes, before.database_bytes);
  ASSERT_OK_AND_ASSIGN(space, index->Space());
  EXPECT_EQ(space.free_bytes, 0);
  // Statements work after VACUUM (the cache was rebuilt).
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> f, index->FindFile(1, "survivor"));
  EXPECT_TRUE(f.has_value());
  ASSERT_OK(index->BeginBatch());
  EXPECT_EQ(index->Vacuum().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_OK(index->CommitBatch());
}

// --- Subvolumes ---

TEST_F(IndexTest, SubvolumesUpsertKeepScanStateAndRemoveTheirRows) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  SubvolumeRecord top{kTop, "", "uuid-top", "", "", false};
  SubvolumeRecord snap{256, "snaps/2024", "uuid-snap", "uuid-top", "", true};
  ASSERT_OK(index->UpsertSubvolume(top));
  ASSERT_OK(index->UpsertSubvolume(snap));
  ASSERT_OK(index->SetSubvolumeScanned(256, 1234, clock_.Now()));
  snap.read_only = false;
  ASSERT_OK(index->UpsertSubvolume(snap));  // keeps last_generation and last_scan
  EXPECT_EQ(index->SetSubvolumeScanned(999, 1, clock_.Now()).code(),
            absl::StatusCode::kNotFound);

  ASSERT_OK_AND_ASSIGN(std::vector<SubvolumeRecord> subvols, index->ListSubvolumes());
  ASSERT_EQ(subvols.size(), 2u);
  EXPECT_EQ(subvols[0].last_scan, absl::InfinitePast());
  EXPECT_EQ(subvols[1].path, "snaps/2024");
  EXPECT_EQ(subvols[1].parent_uuid, "uuid-top");
  EXPECT_FALSE(subvols[1].read_only);
  EXPECT_EQ(subvols[1].last_generation, 1234u);
  EXPECT_EQ(subvols[1].last_scan, clock_.Now());

  ASSERT_OK_AND_ASSIGN(int64_t top_dir, index->EnsureDir("data", kTop, 257));
  ASSERT_OK(index->EnsureDir("snaps", kTop, 258).status());
  ASSERT_OK_AND_ASSIGN(int64_t snap_root, index->EnsureDir("snaps/2024", 256, 256));
  ASSERT_OK_AND_ASSIGN(int64_t snap_data, index->EnsureDir("snaps/2024/data", 256, 257));
  ASSERT_OK(index->ObserveFile(top_dir, "a", Seen(300, 10000), clock_.Now(), policy_).status());
  ASSERT_OK(index->ObserveFile(snap_data, "a", Seen(300, 10000, 1000, 7, 256), clock_.Now(),
                               policy_)
                .status());
  ASSERT_OK(index->ObserveFile(snap_root, "b", Seen(301, 10000, 1000, 7, 256), clock_.Now(),
                               policy_)
                .status());

  // A snapshot whose parent directory was never recorded: the intermediate directory
  // belongs to the top level (its parent's subvolume), not to the snapshot.
  ASSERT_OK(index->EnsureDir("more/snap2", 257, 256).status());
  ASSERT_OK(index->RemoveSubvolume(257));
  ASSERT_OK_AND_ASSIGN(std::vector<DirEntryRecord> top_entries, index->ListDir(1));
  std::vector<std::string> top_names;
  for (const DirEntryRecord& e : top_entries) top_names.push_back(e.name);
  EXPECT_THAT(top_names, ElementsAre("data", "more", "snaps"));

  ASSERT_OK(index->RemoveSubvolume(256));
  ASSERT_OK_AND_ASSIGN(subvols, index->ListSubvolumes());
  ASSERT_EQ(subvols.size(), 1u);
  EXPECT_EQ(subvols[0].id, kTop);
  ASSERT_OK_AND_ASSIGN(std::vector<FileRecord> files, index->FilesOfSize(10000));
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].path, "data/a");
  ASSERT_OK_AND_ASSIGN(std::optional<int64_t> gone, index->FindDirByInode(256, 257));
  EXPECT_FALSE(gone.has_value());
  ASSERT_OK_AND_ASSIGN(std::optional<int64_t> kept, index->FindDirByInode(kTop, 258));
  EXPECT_TRUE(kept.has_value());
}

// --- Read-only flips ---

TEST_F(IndexTest, ReadOnlyFlipsPersistAcrossReopen) {
  {
    std::unique_ptr<VolumeIndex> index = MustOpen();
    ASSERT_NE(index, nullptr);
    ASSERT_OK(index->RecordReadOnlyFlip({256, "snaps/a", clock_.Now()}));
    ASSERT_OK(index->RecordReadOnlyFlip({257, "snaps/b\nnewline", clock_.Now()}));
    ASSERT_OK(index->ClearReadOnlyFlip(256));
  }
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  ASSERT_OK_AND_ASSIGN(std::vector<ReadOnlyFlip> flips, index->PendingReadOnlyFlips());
  ASSERT_EQ(flips.size(), 1u);
  EXPECT_EQ(flips[0].subvol_id, 257u);
  EXPECT_EQ(flips[0].path, "snaps/b\nnewline");
  EXPECT_EQ(flips[0].flipped_at, clock_.Now());
  ASSERT_OK(index->ClearReadOnlyFlip(257));
  ASSERT_OK_AND_ASSIGN(flips, index->PendingReadOnlyFlips());
  EXPECT_TRUE(flips.empty());
}

// The flip record is committed on its own (durably) before the flag is cleared, so it
// can never ride in a batch that might still roll back.
TEST_F(IndexTest, ReadOnlyFlipInsideABatchIsRefused) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  ASSERT_OK(index->BeginBatch());
  EXPECT_EQ(index->RecordReadOnlyFlip({256, "snaps/a", clock_.Now()}).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_OK(index->CommitBatch());
  ASSERT_OK_AND_ASSIGN(std::vector<ReadOnlyFlip> flips, index->PendingReadOnlyFlips());
  EXPECT_TRUE(flips.empty());
}

// --- Transactions and crashes ---

TEST_F(IndexTest, BatchesCommitOrRollBackAsAWhole) {
  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  ASSERT_OK(index->BeginBatch());
  EXPECT_EQ(index->BeginBatch().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_OK(index->ObserveFile(1, "kept", Seen(1, 10000), clock_.Now(), policy_).status());
  ASSERT_OK(index->CommitBatch());
  ASSERT_OK(index->BeginBatch());
  ASSERT_OK(index->ObserveFile(1, "dropped", Seen(2, 10000), clock_.Now(), policy_).status());
  ASSERT_OK(index->SetMeta("k", "v"));
  ASSERT_OK(index->RollbackBatch());
  EXPECT_EQ(index->CommitBatch().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(index->RollbackBatch().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_OK_AND_ASSIGN(std::vector<DirEntryRecord> root, index->ListDir(1));
  ASSERT_EQ(root.size(), 1u);
  EXPECT_EQ(root[0].name, "kept");
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> meta, index->GetMeta("k"));
  EXPECT_FALSE(meta.has_value());
  // A failed composite mutation inside a batch leaves the batch usable.
  ASSERT_OK(index->BeginBatch());
  const absl::Status no_dir =
      index->ObserveFile(424242, "x", Seen(3, 10000), clock_.Now(), policy_).status();
  EXPECT_TRUE(absl::IsNotFound(no_dir)) << no_dir;
  ASSERT_OK(index->ObserveFile(1, "after", Seen(4, 10000), clock_.Now(), policy_).status());
  ASSERT_OK(index->CommitBatch());
  ASSERT_OK_AND_ASSIGN(root, index->ListDir(1));
  EXPECT_EQ(root.size(), 2u);
}

TEST_F(IndexTest, SecondConnectionReadsCommittedStateWhileABatchIsOpen) {
  std::unique_ptr<VolumeIndex> writer = MustOpen();
  ASSERT_NE(writer, nullptr);
  ASSERT_OK(writer->ObserveFile(1, "old", Seen(1, 10000), clock_.Now(), policy_).status());
  ASSERT_OK(writer->BeginBatch());
  ASSERT_OK_AND_ASSIGN(int64_t fresh, writer->ObserveFile(1, "new", Seen(2, 10000),
                                                          clock_.Now(), policy_));
  // Opening (as --status does) and reading must not wait for the writer's batch.
  std::unique_ptr<VolumeIndex> reader = MustOpen();
  ASSERT_NE(reader, nullptr);
  ASSERT_OK_AND_ASSIGN(IndexStats stats, reader->Stats(clock_.Now()));
  EXPECT_EQ(stats.files_tracked, 1);
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> unseen, reader->GetFile(fresh));
  EXPECT_FALSE(unseen.has_value());
  ASSERT_OK(writer->CommitBatch());
  ASSERT_OK_AND_ASSIGN(stats, reader->Stats(clock_.Now()));
  EXPECT_EQ(stats.files_tracked, 2);
}

TEST_F(IndexTest, KilledMidBatchLeavesLastCommittedState) {
  {
    std::unique_ptr<VolumeIndex> index = MustOpen();  // schema exists before the fork
    ASSERT_NE(index, nullptr);
  }
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child: one committed batch of 1000 files, then a big uncommitted one, then
    // SIGKILL with the transaction open.
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(path_);
    if (!index.ok()) _exit(2);
    StabilityPolicy policy;
    const absl::Time now = absl::FromUnixSeconds(1700000000);
    if (!(*index)->BeginBatch().ok()) _exit(3);
    absl::StatusOr<int64_t> dir = (*index)->EnsureDir("committed", kTop, 300);
    if (!dir.ok()) _exit(4);
    for (int i = 0; i < 1000; ++i) {
      if (!(*index)->ObserveFile(*dir, absl::StrCat("f", i), Seen(1000 + i, 10000), now,
                                 policy)
               .ok()) {
        _exit(5);
      }
    }
    if (!(*index)->CommitBatch().ok()) _exit(6);
    if (!(*index)->BeginBatch().ok()) _exit(7);
    absl::StatusOr<int64_t> lost = (*index)->EnsureDir("uncommitted", kTop, 301);
    if (!lost.ok()) _exit(8);
    for (int i = 0; i < 20000; ++i) {  // enough to spill pages into the database file
      if (!(*index)->ObserveFile(*lost, absl::StrCat("g", i), Seen(5000 + i, 10000), now,
                                 policy)
               .ok()) {
        _exit(9);
      }
      if (i == 10000 && !(*index)->SetMeta("half", "way").ok()) _exit(10);
    }
    kill(getpid(), SIGKILL);
    _exit(11);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited with " << WEXITSTATUS(wstatus);
  ASSERT_EQ(WTERMSIG(wstatus), SIGKILL);

  std::unique_ptr<VolumeIndex> index = MustOpen();
  ASSERT_NE(index, nullptr);
  ASSERT_OK_AND_ASSIGN(IndexStats stats, index->Stats(clock_.Now()));
  EXPECT_EQ(stats.files_tracked, 1000);
  ASSERT_OK_AND_ASSIGN(std::vector<DirEntryRecord> root, index->ListDir(1));
  ASSERT_EQ(root.size(), 1u);
  EXPECT_EQ(root[0].name, "committed");
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> meta, index->GetMeta("half"));
  EXPECT_FALSE(meta.has_value());
  EXPECT_THAT(RawQuery(path_, "PRAGMA integrity_check"), ElementsAre("ok"));
  // And the next run continues from it.
  ASSERT_OK(index->ObserveFile(1, "next", Seen(9, 10000), clock_.Now(), policy_).status());
}

}  // namespace
}  // namespace btrdupd
