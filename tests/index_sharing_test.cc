// VolumeIndex (core/index.h) on a real SQLite file: when and how a file came to share
// its reference's extents (RecordSharing: kDeduped on a date, kAlreadyShared found on a
// date), the migration of a version-3 database, and OpenReadOnly, which never writes.

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/index.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/raw_database.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kTop = 5;

using ::btrdupd::testing::Exists;
using ::btrdupd::testing::RawQuery;
using ::btrdupd::testing::ReadBytes;

FileObservation Seen(uint64_t ino, uint64_t size, uint64_t generation = 7) {
  FileObservation o;
  o.subvol_id = kTop;
  o.ino = ino;
  o.size = size;
  o.mtime_ns = 1000;
  o.generation = generation;
  return o;
}

class IndexSharingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string dir_template = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/sharing.XXXXXX");
    ASSERT_NE(mkdtemp(dir_template.data()), nullptr);
    dir_ = dir_template;
    path_ = dir_ + "/btrdupd.db";
    policy_.initial_wait = absl::Minutes(5);
    policy_.max_backoff = absl::Hours(1);
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(path_);
    ASSERT_TRUE(index.ok()) << index.status();
    index_ = std::move(*index);
    for (int i = 0; i < 3; ++i) {
      ASSERT_OK_AND_ASSIGN(ids_[i], index_->ObserveFile(1, absl::StrCat("f", i),
                                                        Seen(300 + i, 10000), t0_, policy_));
      ASSERT_OK(index_->SetHash(ids_[i], HashState::kFull, std::string(32, 'h')));
    }
    ASSERT_OK(index_->SetDedupeState(ids_[0], DedupeState::kReference, 0));
  }

  FileRecord Get(int64_t id) {
    absl::StatusOr<std::optional<FileRecord>> f = index_->GetFile(id);
    EXPECT_TRUE(f.ok() && f->has_value());
    return f.ok() && f->has_value() ? **f : FileRecord{};
  }

  std::string dir_;
  std::string path_;
  StabilityPolicy policy_;
  const absl::Time t0_ = absl::FromUnixSeconds(1700000000);
  const absl::Time t1_ = t0_ + absl::Hours(1);
  const absl::Time t2_ = t0_ + absl::Hours(2);
  std::unique_ptr<VolumeIndex> index_;
  int64_t ids_[3] = {0, 0, 0};
};

TEST_F(IndexSharingTest, DedupedAndAlreadySharedAreDistinctStatesWithTheirDates) {
  ASSERT_OK(index_->RecordSharing(ids_[1], DedupeState::kDeduped, ids_[0], t1_));
  ASSERT_OK(index_->RecordSharing(ids_[2], DedupeState::kAlreadyShared, ids_[0], t2_));
  const FileRecord deduped = Get(ids_[1]);
  EXPECT_EQ(deduped.dedupe_state, DedupeState::kDeduped);
  EXPECT_EQ(deduped.reference_id, ids_[0]);
  EXPECT_EQ(deduped.shared_at, t1_);
  const FileRecord found = Get(ids_[2]);
  EXPECT_EQ(found.dedupe_state, DedupeState::kAlreadyShared);
  EXPECT_EQ(found.reference_id, ids_[0]);
  EXPECT_EQ(found.shared_at, t2_);
  EXPECT_EQ(Get(ids_[0]).shared_at, absl::InfinitePast());

  // "shared" counts what btrdupd deduped; the found one is counted apart, and neither
  // is still saveable.
  ASSERT_OK_AND_ASSIGN(IndexStats stats, index_->Stats(t2_));
  EXPECT_EQ(stats.files_deduped, 1);
  EXPECT_EQ(stats.files_already_shared, 1);
  EXPECT_EQ(stats.bytes_deduped, 10000u);
  EXPECT_EQ(stats.bytes_saveable, 0u);
}

TEST_F(IndexSharingTest, RecordSharingRefusesOtherStatesAndUnknownFiles) {
  EXPECT_TRUE(absl::IsInvalidArgument(
      index_->RecordSharing(ids_[1], DedupeState::kReference, ids_[0], t1_)));
  EXPECT_TRUE(absl::IsInvalidArgument(
      index_->RecordSharing(ids_[1], DedupeState::kDeduped, 0, t1_)));
  EXPECT_TRUE(absl::IsNotFound(
      index_->RecordSharing(999, DedupeState::kDeduped, ids_[0], t1_)));
}

TEST_F(IndexSharingTest, SetDedupeStateLeavesTheDateUnknown) {
  ASSERT_OK(index_->RecordSharing(ids_[1], DedupeState::kDeduped, ids_[0], t1_));
  ASSERT_OK(index_->SetDedupeState(ids_[1], DedupeState::kDeduped, ids_[0]));
  EXPECT_EQ(Get(ids_[1]).shared_at, absl::InfinitePast());
}

TEST_F(IndexSharingTest, ADedupeKeepsItsDateThroughAResetWhileTheFileIsUnchanged) {
  ASSERT_OK(index_->RecordSharing(ids_[1], DedupeState::kDeduped, ids_[0], t1_));
  ASSERT_OK(index_->RecordSharing(ids_[2], DedupeState::kAlreadyShared, ids_[0], t1_));
  ASSERT_OK(index_->ResetDedupeStates());
  EXPECT_EQ(Get(ids_[1]).dedupe_state, DedupeState::kPending);
  EXPECT_EQ(Get(ids_[1]).shared_at, absl::InfinitePast());  // shown for sharing only
  // Re-verified: both share again. The one btrdupd deduped is still its work.
  ASSERT_OK(index_->RecordSharing(ids_[1], DedupeState::kAlreadyShared, ids_[0], t2_));
  ASSERT_OK(index_->RecordSharing(ids_[2], DedupeState::kAlreadyShared, ids_[0], t2_));
  EXPECT_EQ(Get(ids_[1]).dedupe_state, DedupeState::kDeduped);
  EXPECT_EQ(Get(ids_[1]).shared_at, t1_);
  EXPECT_EQ(Get(ids_[2]).dedupe_state, DedupeState::kAlreadyShared);
  EXPECT_EQ(Get(ids_[2]).shared_at, t2_);
}

TEST_F(IndexSharingTest, ADedupeKeepsItsDateWhenItsReferenceGoesAndANewOneIsShared) {
  ASSERT_OK(index_->RecordSharing(ids_[1], DedupeState::kDeduped, ids_[0], t1_));
  ASSERT_OK(index_->RecordSharing(ids_[2], DedupeState::kDeduped, ids_[0], t1_));
  ASSERT_OK(index_->RemoveFile(ids_[0]));
  EXPECT_EQ(Get(ids_[1]).dedupe_state, DedupeState::kPending);
  ASSERT_OK(index_->SetDedupeState(ids_[2], DedupeState::kReference, 0));
  ASSERT_OK(index_->RecordSharing(ids_[1], DedupeState::kAlreadyShared, ids_[2], t2_));
  const FileRecord f = Get(ids_[1]);
  EXPECT_EQ(f.dedupe_state, DedupeState::kDeduped);
  EXPECT_EQ(f.reference_id, ids_[2]);
  EXPECT_EQ(f.shared_at, t1_);
}

TEST_F(IndexSharingTest, AChangedFileForgetsItsDedupe) {
  ASSERT_OK(index_->RecordSharing(ids_[1], DedupeState::kDeduped, ids_[0], t1_));
  ASSERT_OK(index_->ObserveFile(1, "f1", Seen(301, 10000, /*generation=*/8), t1_, policy_)
                .status());
  ASSERT_OK(index_->RecordSharing(ids_[1], DedupeState::kAlreadyShared, ids_[0], t2_));
  EXPECT_EQ(Get(ids_[1]).dedupe_state, DedupeState::kAlreadyShared);
  EXPECT_EQ(Get(ids_[1]).shared_at, t2_);
  // A dedupe after being found sharing is a dedupe, dated then.
  ASSERT_OK(index_->RecordSharing(ids_[1], DedupeState::kDeduped, ids_[0], t2_ + absl::Hours(1)));
  EXPECT_EQ(Get(ids_[1]).dedupe_state, DedupeState::kDeduped);
  EXPECT_EQ(Get(ids_[1]).shared_at, t2_ + absl::Hours(1));
}

TEST_F(IndexSharingTest, VersionThreeDatabaseMigratesWithDedupesOfUnknownDate) {
  ASSERT_OK(index_->SetDedupeState(ids_[1], DedupeState::kDeduped, ids_[0]));
  index_.reset();
  // What version 3 wrote: no shared_at column.
  RawQuery(path_,
           "ALTER TABLE files DROP COLUMN ctime_delta; ALTER TABLE files DROP COLUMN shared_at; "
           "PRAGMA user_version = 3;");
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(path_);
  ASSERT_TRUE(index.ok()) << index.status();
  index_ = std::move(*index);
  EXPECT_THAT(RawQuery(path_, "PRAGMA user_version"),
              ElementsAre(absl::StrCat(kIndexSchemaVersion)));
  const FileRecord f = Get(ids_[1]);
  EXPECT_EQ(f.dedupe_state, DedupeState::kDeduped);
  EXPECT_EQ(f.reference_id, ids_[0]);
  EXPECT_EQ(f.shared_at, absl::InfinitePast());
  ASSERT_OK(index_->RecordSharing(ids_[2], DedupeState::kDeduped, ids_[0], t1_));
  EXPECT_EQ(Get(ids_[2]).shared_at, t1_);
}

// --- OpenReadOnly ---

TEST_F(IndexSharingTest, ReadOnlyOpenReadsAndNeverWrites) {
  ASSERT_OK(index_->RecordSharing(ids_[1], DedupeState::kDeduped, ids_[0], t1_));
  index_.reset();
  const std::string before = ReadBytes(path_);
  {
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index =
        VolumeIndex::OpenReadOnly(path_, "/vol");
    ASSERT_TRUE(index.ok()) << index.status();
    absl::StatusOr<std::optional<FileRecord>> f = (*index)->GetFile(ids_[1]);
    ASSERT_TRUE(f.ok() && f->has_value());
    EXPECT_EQ((*f)->shared_at, t1_);
    ASSERT_OK_AND_ASSIGN(IndexStats stats, (*index)->Stats(t2_));
    EXPECT_EQ(stats.files_deduped, 1);
    EXPECT_FALSE((*index)->SetMeta("k", "v").ok());
    EXPECT_FALSE((*index)->SetDedupeState(ids_[2], DedupeState::kUnique, 0).ok());
  }
  EXPECT_EQ(ReadBytes(path_), before);
}

TEST_F(IndexSharingTest, ReadOnlyOpenRefusesAnOlderSchemaAndLeavesItAsItWas) {
  index_.reset();
  RawQuery(path_,
           "ALTER TABLE files DROP COLUMN ctime_delta; ALTER TABLE files DROP COLUMN shared_at; "
           "PRAGMA user_version = 3;");
  const std::string before = ReadBytes(path_);
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::OpenReadOnly(path_, "/vol");
  ASSERT_FALSE(index.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(index.status())) << index.status();
  EXPECT_THAT(index.status().message(), HasSubstr("schema version 3 is older"));
  EXPECT_THAT(index.status().message(),
              HasSubstr("run 'btrdupd /vol' once to upgrade its index"));
  EXPECT_EQ(ReadBytes(path_), before);
  EXPECT_THAT(RawQuery(path_, "PRAGMA user_version"), ElementsAre("3"));
}

TEST_F(IndexSharingTest, ReadOnlyOpenRefusesANewerSchemaAndLeavesItAsItWas) {
  index_.reset();
  RawQuery(path_, "PRAGMA user_version = 99;");
  const std::string before = ReadBytes(path_);
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::OpenReadOnly(path_, "/vol");
  ASSERT_FALSE(index.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(index.status())) << index.status();
  EXPECT_THAT(index.status().message(), HasSubstr("newer than this btrdupd understands"));
  EXPECT_EQ(ReadBytes(path_), before);
}

TEST_F(IndexSharingTest, ReadOnlyOpenOfNoFileCreatesNothing) {
  const std::string missing = dir_ + "/none.db";
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index =
      VolumeIndex::OpenReadOnly(missing, "/vol");
  EXPECT_TRUE(absl::IsNotFound(index.status())) << index.status();
  EXPECT_FALSE(Exists(missing));
}

TEST_F(IndexSharingTest, ReadOnlyOpenLeavesAKilledWritersJournalToAWriter) {
  index_.reset();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A writer killed with its transaction open, after pages reached the file.
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(path_);
    if (!index.ok() || !(*index)->BeginBatch().ok()) _exit(2);
    StabilityPolicy policy;
    absl::StatusOr<int64_t> dir = (*index)->EnsureDir("lost", kTop, 301);
    if (!dir.ok()) _exit(3);
    for (int i = 0; i < 20000; ++i) {
      if (!(*index)->ObserveFile(*dir, absl::StrCat("g", i), Seen(5000 + i, 10000),
                                 absl::FromUnixSeconds(1700000000), policy)
               .ok()) {
        _exit(4);
      }
    }
    kill(getpid(), SIGKILL);
    _exit(5);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited with " << WEXITSTATUS(wstatus);
  const std::string journal = ReadBytes(path_ + "-journal");
  ASSERT_FALSE(journal.empty());
  const std::string before = ReadBytes(path_);

  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::OpenReadOnly(path_, "/vol");
  ASSERT_FALSE(index.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(index.status())) << index.status();
  EXPECT_THAT(index.status().message(), HasSubstr("run 'btrdupd /vol' once"));
  EXPECT_EQ(ReadBytes(path_), before);
  EXPECT_EQ(ReadBytes(path_ + "-journal"), journal);
  // A writer rolls it back and finds the committed state.
  absl::StatusOr<std::unique_ptr<VolumeIndex>> writer = VolumeIndex::Open(path_);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_OK_AND_ASSIGN(IndexStats stats, (*writer)->Stats(t0_));
  EXPECT_EQ(stats.files_tracked, 3);
}

}  // namespace
}  // namespace btrdupd
