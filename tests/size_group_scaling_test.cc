// A huge size group costs the dedupe engine work in proportion to its size, not to its
// square: counted as file rows read from the index (VolumeIndex::FileRowsRead), on fakes.
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

// Rows read per file, for a group of `files`.
double RowsPerFile(int files, int copies_of_each) {
  absl::StatusOr<testing::SizeGroupRun> run = testing::RunSizeGroup(
      files, copies_of_each, 9000, FreshDir(absl::StrCat("group", files, "x", copies_of_each)));
  EXPECT_TRUE(run.ok()) << run.status();
  if (!run.ok()) return 0;
  EXPECT_EQ(run->files_hashed, files);
  if (copies_of_each > 1) EXPECT_EQ(run->files_deduped, files - files / copies_of_each);
  return static_cast<double>(run->file_rows_read) / files;
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

}  // namespace
}  // namespace btrdupd
