// FIEMAP on a real loopback btrfs, and the extent comparison rules.

#include "ioctl/fiemap.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "ioctl/filesystem.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::PatternBytes;
using ::btrdupd::testing::RunChecked;
using ::btrdupd::testing::WriteFile;
using ::btrdupd::testing::WritePatternFile;

constexpr uint64_t kMiB = 1 << 20;

Extent Plain(uint64_t logical, uint64_t physical, uint64_t length) {
  Extent e;
  e.logical = logical;
  e.physical = physical;
  e.length = length;
  return e;
}

Extent Encoded(uint64_t logical, uint64_t physical, uint64_t length) {
  Extent e = Plain(logical, physical, length);
  e.encoded = true;
  return e;
}

// --- SharesAllExtents: pure comparison rules ---

TEST(ExtentsShareAllTest, SameMappingSplitDifferentlyIsShared) {
  const std::vector<Extent> a = {Plain(0, 1000000, 40 * kMiB)};
  const std::vector<Extent> b = {Plain(0, 1000000, 16 * kMiB),
                                 Plain(16 * kMiB, 1000000 + 16 * kMiB, 24 * kMiB)};
  EXPECT_TRUE(SharesAllExtents(a, b));
  EXPECT_TRUE(SharesAllExtents(b, a));
}

TEST(ExtentsShareAllTest, DifferentPhysicalAddressIsNotShared) {
  const std::vector<Extent> a = {Plain(0, 1000000, 8192), Plain(8192, 5000000, 4096)};
  const std::vector<Extent> b = {Plain(0, 1000000, 8192), Plain(8192, 1008192, 4096)};
  EXPECT_FALSE(SharesAllExtents(a, b));
}

TEST(ExtentsShareAllTest, HolesMustMatch) {
  const std::vector<Extent> with_hole = {Plain(0, 100000, 4096), Plain(8192, 108192, 4096)};
  const std::vector<Extent> without = {Plain(0, 100000, 12288)};
  EXPECT_FALSE(SharesAllExtents(with_hole, without));
  EXPECT_TRUE(SharesAllExtents(with_hole, with_hole));
}

TEST(ExtentsShareAllTest, ExtraExtentIsNotShared) {
  const std::vector<Extent> a = {Plain(0, 100000, 4096)};
  const std::vector<Extent> b = {Plain(0, 100000, 4096), Plain(4096, 200000, 4096)};
  EXPECT_FALSE(SharesAllExtents(a, b));
}

TEST(ExtentsShareAllTest, EncodedExtentsMustMatchWhole) {
  const std::vector<Extent> a = {Encoded(0, 700000, 131072)};
  EXPECT_TRUE(SharesAllExtents(a, a));
  // Compressed extents report the same physical start for every piece, so a
  // piece of one cannot be matched against the whole of the other.
  const std::vector<Extent> pieces = {Encoded(0, 700000, 65536), Encoded(65536, 700000, 65536)};
  EXPECT_FALSE(SharesAllExtents(a, pieces));
}

TEST(ExtentsShareAllTest, EmptyInlineDelallocAndUnknownAreNotComparable) {
  const std::vector<Extent> none;
  EXPECT_FALSE(SharesAllExtents(none, none));
  for (bool Extent::*flag : {&Extent::inline_data, &Extent::delalloc, &Extent::unknown}) {
    Extent e = Plain(0, 0, 4096);
    e.*flag = true;
    const std::vector<Extent> list = {e};
    EXPECT_FALSE(SharesAllExtents(list, list));
  }
}

// --- ReadExtents on btrfs ---

class FiemapIoctlTest : public btrdupd::testing::BtrfsTest {};

TEST_F(FiemapIoctlTest, ExtentsCoverTheWholeFileAndSyncFlushesDelalloc) {
  const uint64_t size = 8 * kMiB + 100;
  ASSERT_OK(WritePatternFile(Path("f"), size, 1));
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, OpenPath(Path("f"), O_RDONLY));
  // No explicit sync: FIEMAP_FLAG_SYNC writes the dirty pages first.
  ASSERT_OK_AND_ASSIGN(std::vector<Extent> extents, ReadExtents(fd.get()));
  ASSERT_FALSE(extents.empty());
  uint64_t expected_logical = 0;
  for (const Extent& e : extents) {
    EXPECT_EQ(e.logical, expected_logical);  // no holes in a written file
    EXPECT_FALSE(e.delalloc);
    EXPECT_FALSE(e.unknown);
    EXPECT_FALSE(e.inline_data);
    EXPECT_FALSE(e.shared);
    expected_logical = e.logical + e.length;
  }
  EXPECT_GE(expected_logical, size);
  EXPECT_TRUE(extents.back().last);
}

TEST_F(FiemapIoctlTest, ReflinkCopySharesAllExtents) {
  ASSERT_OK(WritePatternFile(Path("a"), 4 * kMiB, 2));
  ASSERT_OK(RunChecked({"cp", "--reflink=always", Path("a"), Path("b")}));
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(bool shared, SharesAllExtents(a.get(), b.get()));
  EXPECT_TRUE(shared);
  ASSERT_OK_AND_ASSIGN(SharingSummary summary, SummarizeSharing(b.get()));
  EXPECT_TRUE(summary.comparable);
  EXPECT_GT(summary.mapped_bytes, 0u);
  EXPECT_EQ(summary.shared_bytes, summary.mapped_bytes);
}

TEST_F(FiemapIoctlTest, IndependentCopiesDoNotShare) {
  ASSERT_OK(WritePatternFile(Path("a"), 4 * kMiB, 3));
  ASSERT_OK(WritePatternFile(Path("b"), 4 * kMiB, 3));
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(bool shared, SharesAllExtents(a.get(), b.get()));
  EXPECT_FALSE(shared);
  ASSERT_OK_AND_ASSIGN(SharingSummary summary, SummarizeSharing(a.get()));
  EXPECT_EQ(summary.shared_bytes, 0u);
}

TEST_F(FiemapIoctlTest, OverwritingOneBlockOfACloneBreaksFullSharing) {
  ASSERT_OK(WritePatternFile(Path("a"), 4 * kMiB, 4));
  ASSERT_OK(RunChecked({"cp", "--reflink=always", Path("a"), Path("b")}));
  {
    ASSERT_OK_AND_ASSIGN(UniqueFd w, OpenPath(Path("b"), O_WRONLY));
    const std::string block = PatternBytes(4096, 99);
    ASSERT_EQ(pwrite(w.get(), block.data(), block.size(), kMiB), 4096);
  }
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(bool shared, SharesAllExtents(a.get(), b.get()));
  EXPECT_FALSE(shared);
  ASSERT_OK_AND_ASSIGN(SharingSummary summary, SummarizeSharing(b.get()));
  EXPECT_EQ(summary.shared_bytes, summary.mapped_bytes - 4096);
}

TEST_F(FiemapIoctlTest, TinyFileIsInlineAndNotComparable) {
  ASSERT_OK(WriteFile(Path("tiny"), "hello, btrfs"));
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, OpenPath(Path("tiny"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(std::vector<Extent> extents, ReadExtents(fd.get()));
  ASSERT_EQ(extents.size(), 1u);
  EXPECT_TRUE(extents[0].inline_data);
  ASSERT_OK_AND_ASSIGN(bool shared, SharesAllExtents(fd.get(), fd.get()));
  EXPECT_FALSE(shared);
  ASSERT_OK_AND_ASSIGN(SharingSummary summary, SummarizeSharing(fd.get()));
  EXPECT_FALSE(summary.comparable);
}

TEST_F(FiemapIoctlTest, EmptyFileHasNoExtents) {
  ASSERT_OK(WriteFile(Path("empty"), ""));
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, OpenPath(Path("empty"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(std::vector<Extent> extents, ReadExtents(fd.get()));
  EXPECT_TRUE(extents.empty());
}

TEST_F(FiemapIoctlTest, SparseFileWithManyExtentsIsReadInSeveralCalls) {
  // One 4 KiB block every 8 KiB: 700 extents separated by holes, more than
  // one FIEMAP call returns.
  constexpr int kBlocks = 700;
  {
    ASSERT_OK_AND_ASSIGN(UniqueFd w, OpenPath(Path("sparse"), O_WRONLY | O_CREAT, 0644));
    for (int i = 0; i < kBlocks; ++i) {
      const std::string block = PatternBytes(4096, i);
      ASSERT_EQ(pwrite(w.get(), block.data(), block.size(), 8192 * i), 4096);
    }
  }
  ASSERT_OK(RunChecked({"cp", "--reflink=always", Path("sparse"), Path("clone")}));
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, OpenPath(Path("sparse"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(std::vector<Extent> extents, ReadExtents(fd.get()));
  ASSERT_EQ(extents.size(), static_cast<size_t>(kBlocks));
  for (int i = 0; i < kBlocks; ++i) {
    EXPECT_EQ(extents[i].logical, 8192u * i);
    EXPECT_EQ(extents[i].length, 4096u);
  }
  EXPECT_TRUE(extents.back().last);
  ASSERT_OK_AND_ASSIGN(UniqueFd clone, OpenPath(Path("clone"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(bool shared, SharesAllExtents(fd.get(), clone.get()));
  EXPECT_TRUE(shared);
}

TEST_F(FiemapIoctlTest, DirectoryIsRefusedWithItsPath) {
  ASSERT_OK_AND_ASSIGN(UniqueFd dir, OpenPath(mount_path(), O_RDONLY | O_DIRECTORY));
  absl::StatusOr<std::vector<Extent>> extents = ReadExtents(dir.get());
  // btrfs directories have no fiemap operation: EOPNOTSUPP.
  EXPECT_TRUE(absl::IsUnimplemented(extents.status())) << extents.status();
  EXPECT_NE(std::string(extents.status().message()).find(mount_path()), std::string::npos)
      << extents.status();
}

}  // namespace
}  // namespace btrdupd
