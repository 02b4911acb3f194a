// A huge size group costs the dedupe engine work in proportion to its size, not to its
// square: counted as file rows read from the index (VolumeIndex::FileRowsRead) and group
// members looked at by the dedupe planning (EngineStats::members_planned), on fakes.
// (Before the engine kept the group between steps it re-read the whole group every step:
// about n * n / 64 rows for n files.)

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/size_group_world.h"

namespace btrdupd {
namespace {

std::string FreshDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/", name, "_", getpid());
  EXPECT_EQ(system(absl::StrCat("rm -rf '", dir, "' && mkdir -p '", dir, "'").c_str()), 0);
  return dir;
}

// One engine pass over a group of `files`, `copies_of_each` identical copies per content.
testing::SizeGroupRun RunGroup(int files, int copies_of_each) {
  absl::StatusOr<testing::SizeGroupRun> run = testing::RunSizeGroup(
      files, copies_of_each, 9000, FreshDir(absl::StrCat("group", files, "x", copies_of_each)));
  EXPECT_TRUE(run.ok()) << run.status();
  if (!run.ok()) return testing::SizeGroupRun();
  EXPECT_EQ(run->files_hashed, files);
  if (copies_of_each > 1) {
    EXPECT_EQ(run->files_deduped, files - files / copies_of_each);
  }
  return *run;
}

// Rows read per file, for a group of `files`.
double RowsPerFile(int files, int copies_of_each) {
  return static_cast<double>(RunGroup(files, copies_of_each).file_rows_read) / files;
}

TEST(SizeGroupScalingTest, DistinctFilesOfOneSizeReadEachRowAFewTimes) {
  const double small = RowsPerFile(500, 1);
  const double large = RowsPerFile(4000, 1);
  EXPECT_LE(large, 4.0);
  EXPECT_LE(large, small * 1.5);  // per file, not growing with the group
}

TEST(SizeGroupScalingTest, PairsOfOneSizeReadEachRowAFewTimes) {
  const double small = RowsPerFile(500, 2);
  const double large = RowsPerFile(4000, 2);
  EXPECT_LE(large, 8.0);
  EXPECT_LE(large, small * 1.5);
}

// One group of identical files is deduped in many batches (50 destinations each): each
// batch looks at its own destinations, not at the whole group again (before: every batch
// copied and planned over all members, about n * n / 50 members for n files).
TEST(SizeGroupScalingTest, OneGroupOfIdenticalFilesIsPlannedOnceNotPerBatch) {
  const testing::SizeGroupRun small = RunGroup(500, 500);
  const testing::SizeGroupRun large = RunGroup(4000, 4000);
  const double small_planned = static_cast<double>(small.members_planned) / 500;
  const double large_planned = static_cast<double>(large.members_planned) / 4000;
  EXPECT_GT(large_planned, 0);
  EXPECT_LE(large_planned, 6.0);
  EXPECT_LE(large_planned, small_planned * 1.5);  // per file, not growing with the group
  EXPECT_LE(static_cast<double>(large.file_rows_read) / 4000, 8.0);
}

// Before a group is planned, its members' attributes are read and (no reference yet)
// FIEMAP asked whether each shares extents: at most EngineOptions::
// max_fact_reads_per_step (1024) of these calls per step, so no step's I/O grows with
// the group (before: all 4 000 of each in the group's first dedupe step).
TEST(SizeGroupScalingTest, NoStepOfAHugeGroupMakesFileCallsInProportionToTheGroup) {
  const testing::SizeGroupRun large = RunGroup(4000, 4000);
  EXPECT_GT(large.max_file_calls_per_step, 0);
  EXPECT_LE(large.max_file_calls_per_step, 1024 + 256);
}

}  // namespace
}  // namespace btrdupd
