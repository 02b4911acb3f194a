// "freed" against what btrfs itself reports: the built btrdupd binary run on a fresh
// loopback btrfs, its summary's "freed" figure compared with the fall of the data bytes
// `btrfs filesystem df` shows used (after a commit), within 1 MiB + 1 % (metadata and
// rounding noise). One case per way a destination's old extents can stay referenced:
// plain copies, copies a snapshot also holds, a file deduped into a read-only
// snapshot, reflinked copies, and a group of 50. The database is kept outside the
// filesystem so its writes do not count.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::CommandResult;
using ::btrdupd::testing::RunCommand;
using ::btrdupd::testing::RunShellChecked;
using ::btrdupd::testing::WritePatternFile;

constexpr char kBinary[] = "daemon/btrdupd";
constexpr int64_t kMiB = 1 << 20;

struct Figures {
  int64_t shared = -1;
  int64_t freed = -1;
};

class FreedSpaceTest : public testing::BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    char tmpl[] = "/tmp/btrdupd_freed_db.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    db_dir_ = tmpl;
  }
  void TearDown() override {
    if (!db_dir_.empty()) RunShellChecked(absl::StrCat("rm -rf '", db_dir_, "'")).IgnoreError();
  }

  absl::Status Sh(const std::string& command) { return RunShellChecked(command).status(); }

  // Data bytes used, as `btrfs filesystem df -b` shows them after a commit.
  int64_t DataUsed() {
    absl::StatusOr<std::string> out = RunShellChecked(
        absl::StrCat("btrfs filesystem sync '", mount_path(), "' && btrfs filesystem df -b '",
                     mount_path(), "'"));
    EXPECT_OK(out);
    std::smatch m;
    static const std::regex kData(R"(Data, [^:]*: total=\d+, used=(\d+))");
    if (!out.ok() || !std::regex_search(*out, m, kData)) {
      ADD_FAILURE() << "no Data line in: " << out.value_or("");
      return -1;
    }
    return std::stoll(m[1]);
  }

  // Runs btrdupd --no-wait on the filesystem; the summary's shared and freed bytes.
  Figures Run() {
    absl::StatusOr<CommandResult> r = RunCommand(
        {kBinary, "--no-wait", absl::StrCat("--db-dir=", db_dir_), mount_path()});
    EXPECT_OK(r);
    if (!r.ok()) return {};
    EXPECT_EQ(r->exit_code, 0) << r->stderr_text;
    std::smatch m;
    static const std::regex kFigures(
        R"(shared [^(]*\((\d+) bytes\), freed [^(]*\((\d+) bytes\))");
    if (!std::regex_search(r->stdout_text, m, kFigures)) {
      ADD_FAILURE() << "no shared/freed figures in: " << r->stdout_text;
      return {};
    }
    last_output_ = r->stdout_text;
    return Figures{std::stoll(m[1]), std::stoll(m[2])};
  }

  // Runs btrdupd and checks "freed" against the fall in data used; returns the figures.
  Figures RunAndCompare() {
    const int64_t before = DataUsed();
    const Figures f = Run();
    const int64_t after = DataUsed();
    const int64_t fell = before - after;
    const int64_t tolerance = kMiB + fell / 100;
    EXPECT_NEAR(static_cast<double>(f.freed), static_cast<double>(fell),
                static_cast<double>(tolerance))
        << "freed " << f.freed << ", data used fell by " << fell << "\n"
        << last_output_;
    // The figures, for the record (not an assertion).
    std::printf("%s: shared %lld, freed %lld, data used fell by %lld bytes\n",
                ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                static_cast<long long>(f.shared), static_cast<long long>(f.freed),
                static_cast<long long>(fell));
    return f;
  }

  std::string db_dir_;
  std::string last_output_;
};

TEST_F(FreedSpaceTest, PlainCopiesFreeAllButOne) {
  for (const char* name : {"a", "b", "c"}) ASSERT_OK(WritePatternFile(Path(name), 8 * kMiB, 1));
  const Figures f = RunAndCompare();
  EXPECT_EQ(f.shared, 16 * kMiB);
  EXPECT_EQ(f.freed, 16 * kMiB);
}

// a and b in a subvolume, a read-only snapshot of it, then c: shared counts every
// deduped file, freed only the extents no snapshot copy still holds.
// The snapshot's copies have no rows of their own (they are implied by their source's):
// b's old extent, held by b and snap/b only, is freed when both are deduped.
TEST_F(FreedSpaceTest, CopiesHeldByASnapshotFreeOnlyWhatNothingElseHolds) {
  ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume create '", Path("sv"), "'")));
  ASSERT_OK(WritePatternFile(Path("sv/a"), 8 * kMiB, 2));
  ASSERT_OK(WritePatternFile(Path("sv/b"), 8 * kMiB, 2));
  ASSERT_OK(Sh(absl::StrCat("sync; btrfs -q subvolume snapshot -r '", Path("sv"), "' '",
                            Path("snap"), "'")));
  ASSERT_OK(WritePatternFile(Path("sv/c"), 8 * kMiB, 2));
  const Figures f = RunAndCompare();
  // c's extent is always freed; b's only if its snapshot copy was deduped too (whether
  // the engine takes snapshot copies as destinations is its policy, not this test's).
  EXPECT_GE(f.freed, 8 * kMiB);
  EXPECT_LT(f.freed, f.shared);
}

// A copy that only a read-only snapshot still holds (deleted from its subvolume) is
// deduped into the snapshot against an older file: its extent is freed.
TEST_F(FreedSpaceTest, FileDedupedIntoAReadOnlySnapshotFreesItsExtent) {
  ASSERT_OK(WritePatternFile(Path("keep"), 8 * kMiB, 3));
  Run();  // "keep" is known first, so it is the older file and the reference
  ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume create '", Path("sv"), "'")));
  ASSERT_OK(WritePatternFile(Path("sv/copy"), 8 * kMiB, 3));
  ASSERT_OK(Sh(absl::StrCat("sync; btrfs -q subvolume snapshot -r '", Path("sv"), "' '",
                            Path("snap"), "'; rm '", Path("sv/copy"), "'")));
  const Figures f = RunAndCompare();
  EXPECT_EQ(f.shared, 8 * kMiB);
  EXPECT_EQ(f.freed, 8 * kMiB);
}

// Copies already reflinked to the reference free nothing; a plain copy frees its own.
TEST_F(FreedSpaceTest, ReflinkedCopiesFreeNothingOnlyThePlainCopyFrees) {
  ASSERT_OK(WritePatternFile(Path("a"), 8 * kMiB, 4));
  ASSERT_OK(Sh(absl::StrCat("cp --reflink=always '", Path("a"), "' '", Path("b"),
                            "' && cp --reflink=always '", Path("a"), "' '", Path("c"), "'")));
  ASSERT_OK(WritePatternFile(Path("d"), 8 * kMiB, 4));
  const Figures f = RunAndCompare();
  EXPECT_EQ(f.shared, 8 * kMiB);
  EXPECT_EQ(f.freed, 8 * kMiB);
}

// Two copies reflinked to each other (not to the reference) and deduped in one batch:
// their extent is shared, but only between the two, so it is freed (backref check).
TEST_F(FreedSpaceTest, CopiesSharingOnlyWithEachOtherInOneBatchAreFreed) {
  ASSERT_OK(WritePatternFile(Path("r1"), 8 * kMiB, 5));
  ASSERT_OK(WritePatternFile(Path("r2"), 8 * kMiB, 5));
  Run();  // r1 becomes the remembered reference
  ASSERT_OK(WritePatternFile(Path("b"), 8 * kMiB, 5));
  ASSERT_OK(Sh(absl::StrCat("cp --reflink=always '", Path("b"), "' '", Path("c"), "'")));
  const Figures f = RunAndCompare();
  EXPECT_EQ(f.shared, 16 * kMiB);
  EXPECT_EQ(f.freed, 8 * kMiB);
}

TEST_F(FreedSpaceTest, GroupOfFiftyFreesFortyNineCopies) {
  ASSERT_EQ(mkdir(Path("many").c_str(), 0755), 0);
  for (int i = 0; i < 50; ++i) {
    ASSERT_OK(WritePatternFile(Path(absl::StrCat("many/f", i)), kMiB, 6));
  }
  const Figures f = RunAndCompare();
  EXPECT_EQ(f.shared, 49 * kMiB);
  EXPECT_EQ(f.freed, 49 * kMiB);
}

}  // namespace
}  // namespace btrdupd
