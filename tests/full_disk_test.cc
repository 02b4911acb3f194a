// A full disk, end to end on loopback btrfs (issue 13), where the faults_test.cc cases
// do not reach: the daemon whose database (--db-dir) lives on another, small btrfs
// that fills up while the data volume has space; and one-shot runs on a full data
// volume and on a full database location: a clear error and the documented exit code,
// nothing half-recorded, and the next run after space was freed finishes with an index
// that agrees with the filesystem.

#include <fcntl.h>
#include <ftw.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/index.h"
#include "daemon/volume_name.h"
#include "tests/faults_fixture.h"
#include "tests/testing/command.h"
#include "tests/testing/daemon_process.h"
#include "tests/testing/files.h"
#include "tests/testing/index_contents.h"
#include "tests/testing/loop_btrfs.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::JsonNumberAt;
using ::btrdupd::testing::JsonStringAt;
using ::btrdupd::testing::CanonicalPath;
using ::btrdupd::testing::DaemonProcess;
using ::btrdupd::testing::IndexContents;
using ::btrdupd::testing::IndexedFile;
using ::btrdupd::testing::LoopBtrfs;
using ::btrdupd::testing::RunChecked;
using ::btrdupd::testing::RunCommand;
using ::btrdupd::testing::WaitFor;
using ::btrdupd::testing::WritePatternFile;
using ::testing::HasSubstr;

// The smallest image used: enough for a database of a few hundred files, quick to fill.
constexpr uint64_t kSmallImage = uint64_t{128} << 20;
// min_file_size in the fixture's .btrdupd.conf.
constexpr uint64_t kMinFileSize = 4096;

// The database file of `fs` under `db_dir` (--db-dir).
std::string DatabaseUnder(const std::string& db_dir, LoopBtrfs* fs) {
  return absl::StrCat(db_dir, "/", VolumeNameForPath(CanonicalPath(fs->mount_path())),
                      ".btrdupd.db");
}

// Every regular file of at least kMinFileSize below `root` (relative path -> inode and
// size), leaving out btrdupd's own directory.
std::map<std::string, IndexedFile>* walked = nullptr;
std::string walk_root;
int WalkOne(const char* path, const struct stat* st, int type, struct FTW*) {
  const std::string relative = std::string(path).substr(
      std::min(walk_root.size() + 1, std::string(path).size()));
  if (absl::StartsWith(relative, ".btrdupd/") || relative == ".btrdupd") return 0;
  if (type == FTW_F && S_ISREG(st->st_mode) &&
      static_cast<uint64_t>(st->st_size) >= kMinFileSize) {
    (*walked)[relative] = IndexedFile{0, st->st_ino, static_cast<uint64_t>(st->st_size), 0};
  }
  return 0;
}
std::map<std::string, IndexedFile> WalkFiles(const std::string& root) {
  std::map<std::string, IndexedFile> out;
  walked = &out;
  walk_root = root;
  EXPECT_EQ(nftw(root.c_str(), WalkOne, 16, FTW_PHYS), 0) << root;
  walked = nullptr;
  return out;
}

class FullDiskTest : public FaultsTest {
 protected:
  // Checks that the index at `db` agrees with the filesystem of `fs`: it tracks exactly
  // the files there are (same inodes and sizes: no row lost, none left over), and every
  // file it records as deduped really shares its extents with its reference.
  void ExpectIndexAgreesWithFilesystem(const std::string& db, LoopBtrfs* fs) {
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(db);
    EXPECT_TRUE(index.ok()) << index.status();
    if (!index.ok()) return;
    absl::StatusOr<std::map<std::string, IndexedFile>> contents = IndexContents(index->get());
    EXPECT_TRUE(contents.ok()) << contents.status();
    if (!contents.ok()) return;
    const std::map<std::string, IndexedFile> on_disk = WalkFiles(fs->mount_path());
    std::vector<std::string> missing, extra;
    for (const auto& [path, file] : on_disk) {
      auto it = contents->find(path);
      if (it == contents->end()) {
        missing.push_back(path);
      } else {
        EXPECT_EQ(it->second.ino, file.ino) << path;
        EXPECT_EQ(it->second.size, file.size) << path;
      }
    }
    for (const auto& [path, file] : *contents) {
      if (on_disk.count(path) == 0) extra.push_back(path);
    }
    EXPECT_THAT(missing, ::testing::IsEmpty()) << "files the index lost";
    EXPECT_THAT(extra, ::testing::IsEmpty()) << "rows of files that are gone";
    ExpectDedupedRowsShare(index->get(), fs);
  }

  // Every row recorded as sharing with its reference (deduped, or found already
  // sharing) shares all its extents with it.
  void ExpectDedupedRowsShare(VolumeIndex* index, LoopBtrfs* fs) {
    absl::StatusOr<std::map<std::string, IndexedFile>> contents = IndexContents(index);
    EXPECT_TRUE(contents.ok()) << contents.status();
    if (!contents.ok()) return;
    std::set<uint64_t> sizes;
    for (const auto& [path, file] : *contents) sizes.insert(file.size);
    for (uint64_t size : sizes) {
      absl::StatusOr<std::vector<FileRecord>> files = index->FilesOfSize(size);
      EXPECT_TRUE(files.ok()) << files.status();
      if (!files.ok()) return;
      for (const FileRecord& f : *files) {
        if (!SharesWithReference(f.dedupe_state)) continue;  // deduped, or found sharing
        absl::StatusOr<std::optional<FileRecord>> ref = index->GetFile(f.reference_id);
        EXPECT_TRUE(ref.ok() && ref->has_value()) << f.path;
        if (!(ref.ok() && ref->has_value())) return;
        EXPECT_TRUE(Shared(fs->Path(f.path), fs->Path((*ref)->path)))
            << f.path << " is recorded deduped against " << (*ref)->path
            << " but does not share its extents";
      }
    }
  }

  struct Run {
    int exit_code = -1;
    std::string out;  // stdout then stderr
  };
  Run OneShot(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {testing::DaemonBinaryPath(), "--no-wait"};
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<testing::CommandResult> r = RunCommand(argv);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    return {r->exit_code, r->stdout_text + r->stderr_text};
  }

  // Writes `count` pairs of identical files named prefix<i>a / prefix<i>b.
  static void WritePairs(LoopBtrfs* fs, const std::string& prefix, int count, uint64_t seed) {
    for (int i = 0; i < count; ++i) {
      const uint64_t size = 64 * 1024 + 4096 * i;
      for (const char* side : {"a", "b"}) {
        ASSERT_TRUE(
            WritePatternFile(fs->Path(absl::StrCat(prefix, i, side)), size, seed + i).ok());
      }
    }
  }

  std::string MakeDbDir(LoopBtrfs* on) {
    const std::string dir = on->Path("db");
    EXPECT_EQ(mkdir(dir.c_str(), 0700), 0) << dir;
    return dir;
  }
};

// The database lives on a second, small btrfs (--db-dir) that fills up while the data
// volume has space: the daemon stays alive and answering, pauses that volume with the
// reason in its status and one warning in its log, records and dedupes nothing while
// it cannot write its database, and picks up by itself after space is freed there.
TEST_F(FullDiskTest, FullDatabaseVolumePausesTheDaemonAndItResumesWhenSpaceIsFreed) {
  LoopBtrfs* data = MakeVolume();
  ASSERT_NE(data, nullptr);
  LoopBtrfs* dbvol = MakeVolume(kSmallImage);
  ASSERT_NE(dbvol, nullptr);
  const std::string db_dir = MakeDbDir(dbvol);
  ASSERT_TRUE(WritePatternFile(data->Path("a1"), 512 * 1024, 1).ok());
  ASSERT_TRUE(WritePatternFile(data->Path("a2"), 512 * 1024, 1).ok());
  DaemonProcess* d = StartDaemon(data, {"--db-dir=" + db_dir});
  ASSERT_TRUE(WaitFor([&] { return JsonNumberAt(Status(data), "files_deduped") >= 1; })) << d->Log();

  ASSERT_GT(FillUntilFull(dbvol->Path("filler")), 0u);
  FillUntilFull(dbvol->Path("filler2"));
  // Work the daemon would have to record: many new files and a new pair.
  ASSERT_TRUE(RunChecked({"mkdir", data->Path("many")}).ok());
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(
        WritePatternFile(data->Path(absl::StrCat("many/f", i)), 8192, 1000 + i).ok());
  }
  ASSERT_TRUE(WritePatternFile(data->Path("c1"), 640 * 1024, 3).ok());
  ASSERT_TRUE(WritePatternFile(data->Path("c2"), 640 * 1024, 3).ok());

  // 30 s with the database's filesystem full (topped up whenever btrfs gives back a few
  // blocks): alive, answering, saying why, and not deduping what it cannot record.
  bool said_full = false;
  std::string activity;
  const absl::Time end = absl::Now() + absl::Seconds(30);
  int topped = 0;
  while (absl::Now() < end) {
    ASSERT_TRUE(d->running()) << "the daemon died (exit " << d->exit_code() << "):\n"
                              << d->Log();
    JsonValue s = Status(data);
    ASSERT_NE(s.type, JsonValue::Type::kNull) << "no status reply:\n" << d->Log();
    if (absl::StartsWith(JsonStringAt(s, "activity"), "paused: no space left")) {
      said_full = true;
      activity = JsonStringAt(s, "activity");
    }
    FillUntilFull(dbvol->Path(absl::StrCat("top", topped++ % 4)));
    absl::SleepFor(absl::Milliseconds(500));
  }
  EXPECT_TRUE(said_full) << d->Log();
  // The reason names the database that cannot be written.
  EXPECT_THAT(activity, HasSubstr(db_dir)) << activity;
  const std::string full_log = d->Log();
  EXPECT_EQ(CountLines(full_log, "WARNING", "will retry in"), 1) << full_log;
  EXPECT_EQ(CountLines(full_log, "WARNING", "no space") +
                CountLines(full_log, "WARNING", "disk is full"),
            1)
      << full_log;
  EXPECT_FALSE(Shared(data->Path("c1"), data->Path("c2")))
      << "deduped while its database could not record it:\n" << full_log;

  // Space comes back on the database's filesystem only.
  for (const std::string& name : {"filler", "filler2", "top0", "top1", "top2", "top3"}) {
    unlink(dbvol->Path(name).c_str());
  }
  ASSERT_TRUE(RunChecked({"btrfs", "filesystem", "sync", dbvol->mount_path()}).ok());
  ASSERT_TRUE(WritePatternFile(data->Path("b1"), 768 * 1024, 2).ok());
  ASSERT_TRUE(WritePatternFile(data->Path("b2"), 768 * 1024, 2).ok());
  ASSERT_TRUE(WaitFor([&] { return Shared(data->Path("b1"), data->Path("b2")); },
                      absl::Seconds(90)))
      << d->Log();
  EXPECT_TRUE(Shared(data->Path("c1"), data->Path("c2"))) << d->Log();
  EXPECT_THAT(d->Log(), HasSubstr("working again"));
  EXPECT_EQ(JsonStringAt(Status(data), "state"), "ok") << d->Log();
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
  ExpectIndexAgreesWithFilesystem(DatabaseUnder(db_dir, data), data);
}

// Where the full disk is, for a one-shot run.
enum class Full { kDataVolume, kDatabaseElsewhere };

class OneShotFullDiskTest : public FullDiskTest,
                            public ::testing::WithParamInterface<Full> {};

// A one-shot run on a full disk fails that volume with an error naming it, the reason
// and what to do, and the documented exit code (1: another volume was processed; 3: none
// was); it records nothing half-done. After space is freed, the next run finishes and
// the index agrees with the filesystem.
TEST_P(OneShotFullDiskTest, FailsClearlyRecordsNothingHalfDoneAndTheNextRunFinishes) {
  const bool db_elsewhere = GetParam() == Full::kDatabaseElsewhere;
  LoopBtrfs* data = MakeVolume(db_elsewhere ? uint64_t{512} << 20 : kSmallImage);
  ASSERT_NE(data, nullptr);
  LoopBtrfs* dbvol = nullptr;
  std::string db = data->Path(".btrdupd/btrdupd.db");
  std::vector<std::string> args;
  if (db_elsewhere) {
    dbvol = MakeVolume(kSmallImage);
    ASSERT_NE(dbvol, nullptr);
    const std::string db_dir = MakeDbDir(dbvol);
    db = DatabaseUnder(db_dir, data);
    args.push_back("--db-dir=" + db_dir);
  }
  // A second, healthy volume beside a full data volume: it is still processed.
  LoopBtrfs* healthy = db_elsewhere ? nullptr : MakeVolume();
  ASSERT_NO_FATAL_FAILURE(WritePairs(data, "p", 3, 10));
  Run first = OneShot([&] {
    std::vector<std::string> a = args;
    a.push_back(data->mount_path());
    return a;
  }());
  ASSERT_EQ(first.exit_code, 0) << first.out;

  // New work, then the disk fills up.
  ASSERT_NO_FATAL_FAILURE(WritePairs(data, "q", 4, 20));
  ASSERT_TRUE(RunChecked({"mkdir", data->Path("many")}).ok());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(
        WritePatternFile(data->Path(absl::StrCat("many/f", i)), 8192, 1000 + i).ok());
  }
  LoopBtrfs* full = db_elsewhere ? dbvol : data;
  ASSERT_GT(FillUntilFull(full->Path("filler")), 0u);
  FillUntilFull(full->Path("filler2"));
  if (healthy != nullptr) ASSERT_NO_FATAL_FAILURE(WritePairs(healthy, "h", 2, 30));

  std::vector<std::string> second_args = args;
  second_args.push_back(data->mount_path());
  if (healthy != nullptr) second_args.push_back(healthy->mount_path());
  Run second = OneShot(second_args);
  EXPECT_EQ(second.exit_code, healthy != nullptr ? 1 : 3) << second.out;
  // One error line that names the volume, says the disk is full, where, and what to do.
  EXPECT_THAT(second.out, HasSubstr(absl::StrCat("ERROR ", CanonicalPath(data->mount_path()))))
      << second.out;
  EXPECT_THAT(second.out, HasSubstr("no space left")) << second.out;
  EXPECT_THAT(second.out, HasSubstr(full->mount_path())) << second.out;
  EXPECT_THAT(second.out, HasSubstr("free some space")) << second.out;
  if (healthy != nullptr) {
    EXPECT_TRUE(Shared(healthy->Path("h0a"), healthy->Path("h0b"))) << second.out;
  }
  // Nothing half-recorded: every file the index calls deduped shares its extents.
  {
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(db);
    ASSERT_TRUE(index.ok()) << index.status();
    ExpectDedupedRowsShare(index->get(), data);
  }

  // Space comes back: the next run finishes and the index agrees with the filesystem.
  ASSERT_EQ(unlink(full->Path("filler").c_str()), 0);
  unlink(full->Path("filler2").c_str());
  ASSERT_TRUE(RunChecked({"btrfs", "filesystem", "sync", full->mount_path()}).ok());
  Run third = OneShot(second_args);
  EXPECT_EQ(third.exit_code, 0) << third.out;
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(Shared(data->Path(absl::StrCat("q", i, "a")),
                       data->Path(absl::StrCat("q", i, "b"))))
        << i << "\n" << third.out;
  }
  ExpectIndexAgreesWithFilesystem(db, data);
}

INSTANTIATE_TEST_SUITE_P(Where, OneShotFullDiskTest,
                         ::testing::Values(Full::kDataVolume, Full::kDatabaseElsewhere),
                         [](const ::testing::TestParamInfo<Full>& info) {
                           return info.param == Full::kDataVolume ? "DataVolume"
                                                                  : "DatabaseElsewhere";
                         });

}  // namespace
}  // namespace btrdupd
