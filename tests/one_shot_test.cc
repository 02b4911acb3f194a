// One-shot mode end to end: the built btrdupd binary run on a fresh loopback btrfs.
// Duplicates end up sharing extents with their contents intact; files still in their
// stability wait are left alone unless --no-wait; --dry-run changes neither extents nor
// dedupe state; --status reports what the database holds; a bad volume fails alone;
// the duperemove backend works and a missing duperemove stops the volume at start-up.

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/index.h"
#include "daemon/status_json.h"
#include "daemon/volume_name.h"
#include "gtest/gtest.h"
#include "ioctl/fiemap.h"
#include "ioctl/inode_flags.h"
#include "ioctl/tree_search.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::BtrfsTest;
using ::btrdupd::testing::CommandResult;
using ::btrdupd::testing::PatternBytes;
using ::btrdupd::testing::ReadFile;
using ::btrdupd::testing::RunCommand;
using ::btrdupd::testing::WritePatternFile;

constexpr char kBinary[] = "daemon/btrdupd";
constexpr uint64_t kBig = 4 * 1024 * 1024 + 5;
constexpr uint64_t kMedium = 200 * 1024;
constexpr uint64_t kSmall = 4000;  // below min_file_size (8192)
// Two extra copies of the big file and one of the medium one.
constexpr uint64_t kReclaimable = 2 * kBig + kMedium;

struct TestFile {
  std::string name;
  uint64_t size;
  uint64_t seed;
};

const std::vector<TestFile>& Files() {
  static const auto* files = new std::vector<TestFile>{
      {"big/a", kBig, 1},        {"big/b", kBig, 1},     {"big/c", kBig, 1},
      {"big/decoy", kBig, 3},    {"sp ace/x", kMedium, 2}, {"odd\nname", kMedium, 2},
      {"small/s1", kSmall, 4},   {"small/s2", kSmall, 4}, {"unique", 1 << 20, 5},
  };
  return *files;
}

std::vector<Extent> ExtentsOf(const std::string& path) {
  sync();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  absl::StatusOr<std::vector<Extent>> extents = ReadExtents(fd);
  close(fd);
  EXPECT_TRUE(extents.ok()) << extents.status();
  return extents.ok() ? *extents : std::vector<Extent>();
}

std::vector<uint64_t> Physical(const std::string& path) {
  std::vector<uint64_t> out;
  for (const Extent& e : ExtentsOf(path)) out.push_back(e.physical);
  return out;
}

class OneShotTest : public BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    for (const char* dir : {"big", "sp ace", "small"}) {
      ASSERT_EQ(mkdir(Path(dir).c_str(), 0755), 0) << dir;
    }
    for (const TestFile& f : Files()) {
      ASSERT_TRUE(WritePatternFile(Path(f.name), f.size, f.seed).ok()) << f.name;
    }
    sync();
  }

  CommandResult Btrdupd(std::vector<std::string> args) {
    args.insert(args.begin(), kBinary);
    absl::StatusOr<CommandResult> result = RunCommand(args);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : CommandResult{-1, "", ""};
  }

  bool Shared(absl::string_view a, absl::string_view b) {
    return SharesAllExtents(ExtentsOf(Path(a)), ExtentsOf(Path(b)));
  }

  void ExpectContentsIntact() {
    for (const TestFile& f : Files()) {
      absl::StatusOr<std::string> data = ReadFile(Path(f.name));
      EXPECT_TRUE(data.ok()) << data.status();
      if (data.ok()) EXPECT_TRUE(*data == PatternBytes(f.size, f.seed)) << f.name << " changed";
    }
  }

  void ExpectAllDuplicatesShared() {
    EXPECT_TRUE(Shared("big/a", "big/b"));
    EXPECT_TRUE(Shared("big/a", "big/c"));
    EXPECT_TRUE(Shared("sp ace/x", "odd\nname"));
    EXPECT_FALSE(Shared("big/a", "big/decoy"));
    EXPECT_FALSE(Shared("small/s1", "small/s2"));
  }

  std::unique_ptr<VolumeIndex> OpenIndex(const std::string& db) {
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(db);
    EXPECT_TRUE(index.ok()) << index.status();
    return index.ok() ? *std::move(index) : nullptr;
  }

  std::string DefaultDb() { return Path(".btrdupd/btrdupd.db"); }
};

TEST_F(OneShotTest, NoWaitDedupesEveryDuplicateAndKeepsContents) {
  CommandResult r = Btrdupd({"--no-wait", mount_path()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  ExpectAllDuplicatesShared();
  ExpectContentsIntact();
  EXPECT_TRUE(absl::StrContains(r.stdout_text, absl::StrCat(mount_path(), ": full scan")))
      << r.stdout_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, absl::StrCat("deduped 3 files: shared ")))
      << r.stdout_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, absl::StrCat("(", kReclaimable, " bytes)")))
      << r.stdout_text;

  // A second run finds nothing new to do.
  CommandResult again = Btrdupd({"--no-wait", mount_path()});
  ASSERT_EQ(again.exit_code, 0) << again.stderr_text;
  EXPECT_TRUE(absl::StrContains(again.stdout_text, "incremental scan")) << again.stdout_text;
  EXPECT_TRUE(absl::StrContains(again.stdout_text, "deduped 0 files")) << again.stdout_text;
}

TEST_F(OneShotTest, NextRunDoesNotSeeThisRunsOwnDedupesAsChanges) {
  CommandResult r = Btrdupd({"--no-wait", mount_path()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  ExpectAllDuplicatesShared();

  // The generation the next incremental pass starts from lies past the dedupes, which
  // rewrote the inodes of the copies: none of them is a change to look at again.
  std::unique_ptr<VolumeIndex> index = OpenIndex(DefaultDb());
  ASSERT_NE(index, nullptr);
  absl::StatusOr<std::vector<SubvolumeRecord>> subvols = index->ListSubvolumes();
  ASSERT_TRUE(subvols.ok()) << subvols.status();
  ASSERT_EQ(subvols->size(), 1u);
  const uint64_t since = subvols->front().last_generation;
  index.reset();
  const int root = open(mount_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(root, 0);
  absl::StatusOr<std::vector<InodeItem>> changed = ChangedInodesSince(root, since);
  close(root);
  ASSERT_TRUE(changed.ok()) << changed.status();
  for (const char* name : {"big/a", "big/b", "big/c", "sp ace/x", "odd\nname"}) {
    struct stat st;
    ASSERT_EQ(lstat(Path(name).c_str(), &st), 0) << name;
    for (const InodeItem& c : *changed) EXPECT_NE(c.ino, st.st_ino) << name;
  }
}

TEST_F(OneShotTest, DatabaseDirectoryIsCreatedNoCow) {
  ASSERT_EQ(Btrdupd({"--no-wait", mount_path()}).exit_code, 0);
  for (const std::string& path : {Path(".btrdupd"), DefaultDb()}) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << path;
    absl::StatusOr<InodeFlags> flags = GetInodeFlags(fd);
    close(fd);
    ASSERT_TRUE(flags.ok()) << flags.status();
    EXPECT_TRUE(flags->nocow) << path << " should be NOCOW (chattr +C)";
  }
  // The volume's own files keep copy-on-write (and their checksums).
  const int fd = open(Path("big/a").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  absl::StatusOr<InodeFlags> flags = GetInodeFlags(fd);
  close(fd);
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_FALSE(flags->nocow);
}

TEST_F(OneShotTest, FreshFilesWaitForStabilityWithoutNoWait) {
  CommandResult r = Btrdupd({mount_path()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_FALSE(Shared("big/a", "big/b"));
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "stability wait")) << r.stdout_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "--no-wait")) << r.stdout_text;
}

TEST_F(OneShotTest, NoWaitAlsoEndsTheWaitOfFilesAnEarlierRunSaw) {
  ASSERT_EQ(Btrdupd({mount_path()}).exit_code, 0);
  EXPECT_FALSE(Shared("big/a", "big/b"));
  CommandResult r = Btrdupd({"--no-wait", mount_path()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  ExpectAllDuplicatesShared();
  EXPECT_FALSE(absl::StrContains(r.stdout_text, "stability wait")) << r.stdout_text;
}

TEST_F(OneShotTest, DryRunPrintsGroupsAndChangesNoExtentAndNoDedupeState) {
  std::vector<std::vector<uint64_t>> before;
  for (const TestFile& f : Files()) before.push_back(Physical(Path(f.name)));

  CommandResult r = Btrdupd({"--dry-run", "--no-wait", mount_path()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "would dedupe 2 copies of 4.0 MiB"))
      << r.stdout_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "would dedupe 1 copy of 200.0 KiB"))
      << r.stdout_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, Path("big/b"))) << r.stdout_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, Path("odd\\x0aname"))) << r.stdout_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, absl::StrCat("(", kReclaimable, " bytes)")))
      << r.stdout_text;

  for (size_t i = 0; i < Files().size(); ++i) {
    EXPECT_EQ(Physical(Path(Files()[i].name)), before[i]) << Files()[i].name;
  }
  ExpectContentsIntact();
  {
    std::unique_ptr<VolumeIndex> index = OpenIndex(DefaultDb());
    ASSERT_NE(index, nullptr);
    absl::StatusOr<IndexStats> stats = index->Stats(absl::Now());
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(stats->files_deduped, 0);
    for (uint64_t size : {kBig, kMedium}) {
      absl::StatusOr<std::vector<FileRecord>> files = index->FilesOfSize(size);
      ASSERT_TRUE(files.ok()) << files.status();
      for (const FileRecord& f : *files) {
        EXPECT_EQ(f.dedupe_state, DedupeState::kPending) << f.path;
        EXPECT_EQ(f.reference_id, 0) << f.path;
      }
    }
  }
  // The real run afterwards does the work.
  CommandResult real = Btrdupd({"--no-wait", mount_path()});
  ASSERT_EQ(real.exit_code, 0) << real.stderr_text;
  ExpectAllDuplicatesShared();
}

TEST_F(OneShotTest, StatusReportsWhatTheDatabaseHolds) {
  ASSERT_EQ(Btrdupd({"--no-wait", mount_path()}).exit_code, 0);
  CommandResult r = Btrdupd({"--status", mount_path()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;

  std::unique_ptr<VolumeIndex> index = OpenIndex(DefaultDb());
  ASSERT_NE(index, nullptr);
  absl::StatusOr<IndexStats> stats = index->Stats(absl::Now());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files_deduped, 3);
  EXPECT_EQ(stats->bytes_deduped, kReclaimable);
  auto expect_row = [&](absl::string_view label, const std::string& value) {
    const std::string row = absl::StrFormat("  %-22s %s\n", absl::StrCat(label, ":"), value);
    EXPECT_TRUE(absl::StrContains(r.stdout_text, row)) << row << "\nin:\n" << r.stdout_text;
  };
  expect_row("files tracked", absl::StrCat(stats->files_tracked));
  expect_row("files hashed", absl::StrCat(stats->files_hashed));
  expect_row("files pending", absl::StrCat(stats->files_pending));
  expect_row("duplicate groups", absl::StrCat(stats->duplicate_groups));
  expect_row("files deduped", "3");
  expect_row("bytes shared", absl::StrCat("8.2 MiB (", kReclaimable, " bytes)"));
  // Freed: the copies' whole extents (the big files' last block is allocated whole).
  const uint64_t freed = 2 * (kBig - 5 + 4096) + kMedium;
  EXPECT_EQ(stats->bytes_freed, freed);
  expect_row("bytes freed", absl::StrCat("8.2 MiB (", freed, " bytes)"));
  expect_row("bytes still saveable", absl::StrCat("0 B (", stats->bytes_saveable, " bytes)"));
  absl::StatusOr<std::vector<SubvolumeRecord>> subvols = index->ListSubvolumes();
  ASSERT_TRUE(subvols.ok()) << subvols.status();
  ASSERT_FALSE(subvols->empty());
  for (const SubvolumeRecord& s : *subvols) {
    EXPECT_TRUE(absl::StrContains(r.stdout_text,
                                  absl::StrFormat("    %-8d %-12d ", s.id, s.last_generation)))
        << r.stdout_text;
  }
}

TEST_F(OneShotTest, StatusShowsSkippedFilesByKindAndAsJson) {
  // A second name of big/a: one inode, nothing to share, so it is skipped as a hard link.
  ASSERT_EQ(link(Path("big/a").c_str(), Path("big/a-link").c_str()), 0);
  ASSERT_EQ(Btrdupd({"--no-wait", mount_path()}).exit_code, 0);

  CommandResult text = Btrdupd({"--status", mount_path()});
  ASSERT_EQ(text.exit_code, 0) << text.stderr_text;
  EXPECT_TRUE(absl::StrContains(
      text.stdout_text, absl::StrFormat("    %-20s %6d  %s\n", "hard_link", 1,
                                        "hard link of a handled inode")))
      << text.stdout_text;

  CommandResult json = Btrdupd({"--status", "--json", mount_path()});
  ASSERT_EQ(json.exit_code, 0) << json.stderr_text;
  absl::StatusOr<JsonValue> parsed = ParseJson(json.stdout_text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << json.stdout_text;
  const JsonValue* skipped = parsed->Find("skipped");
  ASSERT_NE(skipped, nullptr) << json.stdout_text;
  ASSERT_EQ(skipped->array.size(), 1u) << json.stdout_text;
  const JsonValue& kind = skipped->array[0];
  EXPECT_EQ(kind.Find("kind")->string, "hard_link");
  EXPECT_EQ(kind.Find("files")->number, 1);
  ASSERT_EQ(kind.Find("recent")->array.size(), 1u);
  // Whichever name was handled first, the other one is the skipped one.
  EXPECT_TRUE(absl::StartsWith(kind.Find("recent")->array[0].Find("path")->string, "big/a"))
      << json.stdout_text;
  EXPECT_TRUE(absl::StrContains(text.stdout_text,
                                kind.Find("recent")->array[0].Find("path")->string))
      << text.stdout_text;
  EXPECT_EQ(parsed->Find("files_skipped")->number, 1);
}

TEST_F(OneShotTest, StatusWithoutDatabaseSaysSoAndFails) {
  CommandResult r = Btrdupd({"--status", mount_path()});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "has not run on this volume")) << r.stderr_text;
  struct stat st;
  EXPECT_NE(stat(DefaultDb().c_str(), &st), 0) << "--status must not create a database";
}

TEST_F(OneShotTest, NonBtrfsVolumeFailsAloneAndTheOthersAreProcessed) {
  const char* tmp = getenv("TEST_TMPDIR");
  const std::string not_btrfs = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/plain-dir");
  mkdir(not_btrfs.c_str(), 0755);
  CommandResult r = Btrdupd({"--no-wait", not_btrfs, mount_path(), "/no/such/volume"});
  EXPECT_EQ(r.exit_code, 1) << r.stderr_text;
  EXPECT_TRUE(absl::StrContains(r.stderr_text, absl::StrCat("ERROR ", not_btrfs, ": ")))
      << r.stderr_text;
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "only works on btrfs")) << r.stderr_text;
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "/no/such/volume")) << r.stderr_text;
  ExpectAllDuplicatesShared();

  CommandResult none = Btrdupd({"--no-wait", not_btrfs});
  EXPECT_EQ(none.exit_code, 3) << none.stderr_text;
}

TEST_F(OneShotTest, NotRootIsAClearErrorForTheVolume) {
  // A copy of the binary where user nobody may run it.
  char dir[] = "/tmp/btrdupd-nonroot-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  ASSERT_EQ(chmod(dir, 0755), 0);
  const std::string binary = absl::StrCat(dir, "/btrdupd");
  ASSERT_TRUE(RunCommand({"cp", kBinary, binary}).ok());
  absl::StatusOr<CommandResult> run =
      RunCommand({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", binary,
                  "--no-wait", mount_path()});
  RunCommand({"rm", "-rf", dir}).IgnoreError();
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->exit_code, 3) << run->stderr_text;
  EXPECT_TRUE(absl::StrContains(run->stderr_text, absl::StrCat("ERROR ", mount_path())))
      << run->stderr_text;
  EXPECT_TRUE(absl::StrContains(run->stderr_text, "root")) << run->stderr_text;
  EXPECT_FALSE(Shared("big/a", "big/b"));
}

TEST_F(OneShotTest, MissingDuperemoveStopsTheVolumeAtStartUp) {
  absl::StatusOr<CommandResult> run =
      RunCommand({"env", "PATH=/nonexistent-btrdupd-test", kBinary, "--backend=duperemove",
                  "--no-wait", mount_path()});
  ASSERT_TRUE(run.ok()) << run.status();
  const CommandResult& r = *run;
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "needs the duperemove program"))
      << r.stderr_text;
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "--backend=native")) << r.stderr_text;
  EXPECT_FALSE(Shared("big/a", "big/b"));
}

TEST_F(OneShotTest, DuperemoveBackendDedupesAndTheEngineVerifies) {
  CommandResult r = Btrdupd({"--backend=duperemove", "--no-wait", mount_path()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  ExpectAllDuplicatesShared();
  ExpectContentsIntact();
  // The count is the engine's FIEMAP-verified one.
  EXPECT_TRUE(absl::StrContains(r.stdout_text, absl::StrCat("(", kReclaimable, " bytes)")))
      << r.stdout_text;
}

TEST_F(OneShotTest, DuperemoveThatFailsAsAWholeIsOneVolumeErrorAndNoFileIsSkipped) {
  // A duperemove (the stub, acting as 0.15.2) that refuses its usage on every run.
  const char* tmp = getenv("TEST_TMPDIR");
  const std::string bin = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/stubbin");
  ASSERT_EQ(system(absl::StrCat("rm -rf '", bin, "' && mkdir -p '", bin, "'").c_str()), 0);
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
  ASSERT_EQ(symlink(absl::StrCat(cwd, "/tests/testing/duperemove_stub.sh").c_str(),
                    absl::StrCat(bin, "/duperemove").c_str()),
            0);
  const std::string path = absl::StrCat("PATH=", bin, ":/usr/bin:/bin");
  absl::StatusOr<CommandResult> run =
      RunCommand({"env", path, "STUB_MODE=usage", kBinary, "--backend=duperemove",
                  "--no-wait", mount_path()});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->exit_code, 3) << run->stderr_text;
  // Said once, for the volume, not once per file.
  size_t said = 0;
  for (size_t at = 0; (at = run->stderr_text.find("unrecognized option", at)) != std::string::npos;
       ++at) {
    ++said;
  }
  EXPECT_EQ(said, 1u) << run->stderr_text;
  EXPECT_FALSE(Shared("big/a", "big/b"));
  // Nothing was recorded against the files: once duperemove works, all are deduped.
  run = RunCommand({"env", path, kBinary, "--backend=duperemove", "--no-wait", mount_path()});
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->exit_code, 0) << run->stderr_text;
  ExpectAllDuplicatesShared();
  ExpectContentsIntact();
}

TEST_F(OneShotTest, DbDirKeepsTheDatabaseOutsideTheVolume) {
  const char* tmp = getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/dbs");
  CommandResult r = Btrdupd({"--db-dir", dir, "--no-wait", mount_path()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  struct stat st;
  const std::string db = absl::StrCat(dir, "/", VolumeNameForPath(mount_path()), ".btrdupd.db");
  EXPECT_EQ(stat(db.c_str(), &st), 0) << db;
  EXPECT_NE(stat(Path(".btrdupd").c_str(), &st), 0);
  ExpectAllDuplicatesShared();
  EXPECT_EQ(Btrdupd({"--status", "--db-dir=" + dir, mount_path()}).exit_code, 0);
}

TEST_F(OneShotTest, DbPathIsTheOldNameOfDbDir) {
  const char* tmp = getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/old-name-dbs");
  CommandResult r = Btrdupd({"--db-path", dir, "--no-wait", mount_path()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string db = absl::StrCat(dir, "/", VolumeNameForPath(mount_path()), ".btrdupd.db");
  struct stat st;
  EXPECT_EQ(stat(db.c_str(), &st), 0) << db;
  // The database one name made is the one the other finds.
  CommandResult status = Btrdupd({"--status", "--db-dir=" + dir, mount_path()});
  EXPECT_EQ(status.exit_code, 0) << status.stderr_text;
}

}  // namespace
}  // namespace btrdupd
