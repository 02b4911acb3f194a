// VolumeIndex (core/index.h): a database written by an older version is migrated on open
// with its rows intact. Version 4 -> 5: 16-byte file digests and the merged size index
// (core/index_schema.cc).

#include <stdlib.h>

#include <memory>
#include <optional>
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

using ::btrdupd::testing::RawQuery;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kTop = 5;

FileObservation Seen(uint64_t ino, uint64_t size) {
  FileObservation o;
  o.subvol_id = kTop;
  o.ino = ino;
  o.size = size;
  o.mtime_ns = 1000 + static_cast<int64_t>(ino);
  o.generation = 7;
  return o;
}

// A 32-byte digest as versions before 5 stored it: `first` 16 bytes, then 16 others.
std::string OldDigest(char first, char rest) {
  return std::string(16, first) + std::string(16, rest);
}

// The indexes of the files table, by name, then what version 4 had in their place.
constexpr char kIndexesOfFiles[] =
    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'files' "
    "AND sql IS NOT NULL ORDER BY name";
constexpr char kBackToVersion4[] =
    "DROP INDEX files_by_size; DROP INDEX files_skipped; "
    "ALTER TABLE files DROP COLUMN ctime_delta; "
    "CREATE INDEX files_by_size ON files(size); "
    "CREATE INDEX files_hashed ON files(size, hash, dedupe_state) WHERE hash_state = 2; "
    "CREATE INDEX files_done ON files(dedupe_state, size) WHERE dedupe_state != 0; "
    "PRAGMA user_version = 4;";

TEST(IndexMigrationTest, Version4DatabaseKeepsEveryRowWithItsDigestCutTo16Bytes) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/migration.XXXXXX");
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/btrdupd.db";
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  StabilityPolicy policy;
  std::vector<FileRecord> before;
  {
    absl::StatusOr<std::unique_ptr<VolumeIndex>> opened = VolumeIndex::Open(path);
    ASSERT_TRUE(opened.ok()) << opened.status();
    VolumeIndex& index = **opened;
    // A deduped pair with its reference, a prefix-hashed decoy of their size, a unique
    // file, a skipped one and one never hashed: every column version 4 could fill.
    std::vector<int64_t> ids;
    const uint64_t sizes[] = {10000, 10000, 10000, 20000, 20000, 30000};
    for (int i = 0; i < 6; ++i) {
      ASSERT_OK_AND_ASSIGN(int64_t id, index.ObserveFile(1, absl::StrCat("f", i),
                                                         Seen(300 + i, sizes[i]), now, policy));
      ids.push_back(id);
    }
    ASSERT_OK(index.SetHash(ids[0], HashState::kFull, OldDigest('a', 'x')));
    ASSERT_OK(index.SetHash(ids[1], HashState::kFull, OldDigest('a', 'x')));
    ASSERT_OK(index.SetHash(ids[2], HashState::kPrefix, OldDigest('p', 'y')));
    ASSERT_OK(index.SetHash(ids[3], HashState::kFull, OldDigest('u', 'z')));
    ASSERT_OK(index.SetHash(ids[4], HashState::kFull, OldDigest('s', 'w')));
    ASSERT_OK(index.SetDedupeState(ids[0], DedupeState::kReference, 0));
    ASSERT_OK(index.RecordSharing(ids[1], DedupeState::kDeduped, ids[0], now));
    ASSERT_OK(index.SetDedupeState(ids[3], DedupeState::kUnique, 0));
    ASSERT_OK(index.RecordSkip(ids[4], SkipKind::kHardLink, "another name of f3", now));
    for (int64_t id : ids) {
      ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> f, index.GetFile(id));
      ASSERT_TRUE(f.has_value());
      before.push_back(*f);
    }
  }
  RawQuery(path, kBackToVersion4);
  ASSERT_THAT(RawQuery(path, kIndexesOfFiles),
              ElementsAre("files_by_inode", "files_by_name", "files_by_ref", "files_by_size",
                          "files_done", "files_hashed", "files_pending"));

  absl::StatusOr<std::unique_ptr<VolumeIndex>> opened = VolumeIndex::Open(path);
  ASSERT_TRUE(opened.ok()) << opened.status();
  VolumeIndex& index = **opened;
  EXPECT_THAT(RawQuery(path, "PRAGMA user_version"),
              ElementsAre(absl::StrCat(kIndexSchemaVersion)));
  EXPECT_THAT(RawQuery(path, kIndexesOfFiles),
              ElementsAre("files_by_inode", "files_by_name", "files_by_ref", "files_by_size",
                          "files_pending", "files_skipped"));
  EXPECT_THAT(RawQuery(path, "PRAGMA integrity_check"), ElementsAre("ok"));

  for (const FileRecord& old : before) {
    ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> now_row, index.GetFile(old.id));
    ASSERT_TRUE(now_row.has_value()) << old.path;
    const FileRecord& f = *now_row;
    EXPECT_EQ(f.path, old.path);
    EXPECT_EQ(f.ino, old.ino);
    EXPECT_EQ(f.size, old.size);
    EXPECT_EQ(f.mtime_ns, old.mtime_ns);
    EXPECT_EQ(f.generation, old.generation);
    EXPECT_EQ(f.first_seen, old.first_seen);
    EXPECT_EQ(f.next_eligible, old.next_eligible);
    EXPECT_EQ(f.hash_state, old.hash_state) << old.path;
    EXPECT_EQ(f.hash, old.hash.substr(0, 16)) << old.path;
    EXPECT_EQ(f.dedupe_state, old.dedupe_state) << old.path;
    EXPECT_EQ(f.reference_id, old.reference_id) << old.path;
    EXPECT_EQ(f.shared_at, old.shared_at) << old.path;
    EXPECT_EQ(f.skip_kind, old.skip_kind) << old.path;
    EXPECT_EQ(f.skip_detail, old.skip_detail) << old.path;
  }
  EXPECT_EQ(before[1].hash.size(), 32u);

  // The queries that read the new indexes see the migrated rows.
  ASSERT_OK_AND_ASSIGN(IndexStats stats, index.Stats(now));
  EXPECT_EQ(stats.files_tracked, 6);
  EXPECT_EQ(stats.files_hashed, 4);
  EXPECT_EQ(stats.duplicate_groups, 1);
  EXPECT_EQ(stats.files_deduped, 1);
  EXPECT_EQ(stats.bytes_deduped, 10000u);
  EXPECT_EQ(stats.files_skipped, 1);
  ASSERT_OK_AND_ASSIGN(std::vector<SkipKindSummary> skipped, index.SkippedByKind(5));
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_EQ(skipped[0].kind, SkipKind::kHardLink);
  ASSERT_EQ(skipped[0].recent.size(), 1u);
  EXPECT_THAT(skipped[0].recent[0].detail, HasSubstr("another name"));
  ASSERT_OK_AND_ASSIGN(std::vector<FileRecord> of_size, index.FilesOfSize(10000));
  ASSERT_EQ(of_size.size(), 3u);
  EXPECT_EQ(of_size[0].id, before[0].id);
  EXPECT_EQ(of_size[2].id, before[2].id);
}

}  // namespace
}  // namespace btrdupd
