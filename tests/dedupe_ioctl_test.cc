// FIDEDUPERANGE on a real loopback btrfs: what gets shared, what is refused.

#include "ioctl/dedupe.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ioctl/fiemap.h"
#include "ioctl/filesystem.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::PatternBytes;
using ::btrdupd::testing::ReadFile;
using ::btrdupd::testing::RunChecked;
using ::btrdupd::testing::WriteFile;
using ::btrdupd::testing::WritePatternFile;
using ::testing::HasSubstr;
using Kind = DedupeResult::Kind;

constexpr uint64_t kMiB = 1 << 20;

class DedupeIoctlTest : public btrdupd::testing::BtrfsTest {
 protected:
  // Writes identical files and commits them, so extents are allocated.
  absl::Status WriteCopies(const std::vector<std::string>& names, uint64_t size,
                           uint64_t seed) {
    for (const std::string& name : names) {
      RETURN_IF_ERROR(WritePatternFile(Path(name), size, seed));
    }
    return Sync();
  }

  absl::Status Sync() {
    ASSIGN_OR_RETURN(UniqueFd root, OpenPath(mount_path(), O_RDONLY | O_DIRECTORY));
    return SyncFilesystem(root.get());
  }
};

TEST_F(DedupeIoctlTest, IdenticalFilesShareAllExtentsAfterDedupe) {
  const uint64_t size = 40 * kMiB;
  ASSERT_OK(WriteCopies({"a", "b"}, size, 1));
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(bool shared_before, SharesAllExtents(a.get(), b.get()));
  EXPECT_FALSE(shared_before);

  const int dests[] = {b.get()};
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeResult> results, DedupeFile(a.get(), size, dests));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].kind, Kind::kDeduped) << results[0].error;
  EXPECT_EQ(results[0].bytes_deduped, size);
  EXPECT_OK(results[0].error);

  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(bool shared_after, SharesAllExtents(a.get(), b.get()));
  EXPECT_TRUE(shared_after);
  ASSERT_OK_AND_ASSIGN(SharingSummary summary, SummarizeSharing(b.get()));
  EXPECT_EQ(summary.shared_bytes, summary.mapped_bytes);
  EXPECT_GE(summary.mapped_bytes, size);
}

TEST_F(DedupeIoctlTest, ContentsAreUnchangedByDedupe) {
  const uint64_t size = 5 * kMiB + 4096;
  ASSERT_OK(WriteCopies({"a", "b", "c"}, size, 2));
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd c, OpenPath(Path("c"), O_RDONLY));
  const int dests[] = {b.get(), c.get()};
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeResult> results, DedupeFile(a.get(), size, dests));
  for (const DedupeResult& r : results) EXPECT_EQ(r.kind, Kind::kDeduped) << r.error;

  // Read through fresh descriptors after dropping the page cache's copies.
  ASSERT_OK(RunChecked({"sh", "-c", "echo 1 > /proc/sys/vm/drop_caches"}));
  const std::string expected = PatternBytes(size, 2);
  for (const char* name : {"a", "b", "c"}) {
    ASSERT_OK_AND_ASSIGN(std::string contents, ReadFile(Path(name)));
    EXPECT_TRUE(contents == expected) << name << " changed";
  }
}

TEST_F(DedupeIoctlTest, FilesDifferingInLastByteComeBackDiffersAndShareNothing) {
  const uint64_t size = 3 * kMiB;  // one chunk: compared and refused as a whole
  std::string bytes = PatternBytes(size, 3);
  ASSERT_OK(WriteFile(Path("a"), bytes));
  bytes.back() ^= 0x55;
  ASSERT_OK(WriteFile(Path("b"), bytes));
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));

  const int dests[] = {b.get()};
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeResult> results, DedupeFile(a.get(), size, dests));
  EXPECT_EQ(results[0].kind, Kind::kDiffers);
  EXPECT_EQ(results[0].bytes_deduped, 0u);
  EXPECT_OK(results[0].error);

  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(SharingSummary sa, SummarizeSharing(a.get()));
  ASSERT_OK_AND_ASSIGN(SharingSummary sb, SummarizeSharing(b.get()));
  EXPECT_EQ(sa.shared_bytes, 0u);
  EXPECT_EQ(sb.shared_bytes, 0u);
  ASSERT_OK_AND_ASSIGN(std::string b_after, ReadFile(Path("b")));
  EXPECT_TRUE(b_after == bytes);
}

TEST_F(DedupeIoctlTest, DifferenceInALaterChunkKeepsEarlierChunksShared) {
  const uint64_t size = 40 * kMiB;
  std::string bytes = PatternBytes(size, 4);
  ASSERT_OK(WriteFile(Path("a"), bytes));
  bytes.back() ^= 0x55;
  ASSERT_OK(WriteFile(Path("b"), bytes));
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));

  const int dests[] = {b.get()};
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeResult> results, DedupeFile(a.get(), size, dests));
  EXPECT_EQ(results[0].kind, Kind::kDiffers);
  // Two whole 16 MiB chunks matched before the last (8 MiB) one differed.
  EXPECT_EQ(results[0].bytes_deduped, 2 * kDedupeChunkBytes);
  ASSERT_OK_AND_ASSIGN(bool shared, SharesAllExtents(a.get(), b.get()));
  EXPECT_FALSE(shared);
}

TEST_F(DedupeIoctlTest, UnalignedTailIsDedupedWhenRangeEndsAtEofOfBoth) {
  const uint64_t size = kMiB + 123;
  ASSERT_OK(WriteCopies({"a", "b"}, size, 5));
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));

  const int dests[] = {b.get()};
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeResult> results, DedupeFile(a.get(), size, dests));
  EXPECT_EQ(results[0].kind, Kind::kDeduped) << results[0].error;
  EXPECT_EQ(results[0].bytes_deduped, size);
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(bool shared, SharesAllExtents(a.get(), b.get()));
  EXPECT_TRUE(shared);
}

TEST_F(DedupeIoctlTest, UnalignedLengthShortOfEofIsRefusedWithoutSharing) {
  // The kernel would share the whole blocks only, yet report the full length.
  const uint64_t size = kMiB + 123;
  ASSERT_OK(WriteCopies({"a", "b"}, size, 6));
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));

  const int dests[] = {b.get()};
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeResult> results,
                       DedupeFile(a.get(), size - 23, dests));
  EXPECT_EQ(results[0].kind, Kind::kFailed);
  EXPECT_EQ(results[0].bytes_deduped, 0u);
  EXPECT_TRUE(absl::IsInvalidArgument(results[0].error)) << results[0].error;
  EXPECT_THAT(std::string(results[0].error.message()), HasSubstr("EOF"));
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(SharingSummary summary, SummarizeSharing(b.get()));
  EXPECT_EQ(summary.shared_bytes, 0u);
}

TEST_F(DedupeIoctlTest, DestinationOfAnotherSizeIsRefused) {
  ASSERT_OK(WriteCopies({"a"}, kMiB + 123, 14));
  ASSERT_OK(WritePatternFile(Path("shorter"), kMiB, 14));
  ASSERT_OK(WritePatternFile(Path("longer"), 2 * kMiB, 14));
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd shorter, OpenPath(Path("shorter"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd longer, OpenPath(Path("longer"), O_RDONLY));

  const int dests[] = {shorter.get(), longer.get()};
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeResult> results,
                       DedupeFile(a.get(), kMiB + 123, dests));
  EXPECT_EQ(results[0].kind, Kind::kFailed);
  EXPECT_TRUE(absl::IsOutOfRange(results[0].error)) << results[0].error;
  EXPECT_EQ(results[1].kind, Kind::kFailed);
  EXPECT_TRUE(absl::IsInvalidArgument(results[1].error)) << results[1].error;
}

TEST_F(DedupeIoctlTest, MoreDestinationsThanFitOneCallAllDedupe) {
  constexpr int kCopies = 200;
  static_assert(kCopies > kMaxDedupeTargetsPerCall, "must need two calls");
  const uint64_t size = 16 * 1024;  // not inline: btrfs inlines only small files
  std::vector<std::string> names = {"source"};
  for (int i = 0; i < kCopies; ++i) names.push_back(absl::StrCat("copy", i));
  ASSERT_OK(WriteCopies(names, size, 7));

  ASSERT_OK_AND_ASSIGN(UniqueFd source, OpenPath(Path("source"), O_RDONLY));
  std::vector<UniqueFd> copies;
  std::vector<int> dests;
  for (int i = 0; i < kCopies; ++i) {
    ASSERT_OK_AND_ASSIGN(UniqueFd fd, OpenPath(Path(names[i + 1]), O_RDONLY));
    dests.push_back(fd.get());
    copies.push_back(std::move(fd));
  }
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeResult> results,
                       DedupeFile(source.get(), size, dests));
  ASSERT_EQ(results.size(), static_cast<size_t>(kCopies));
  ASSERT_OK(Sync());
  for (int i = 0; i < kCopies; ++i) {
    EXPECT_EQ(results[i].kind, Kind::kDeduped) << names[i + 1] << ": " << results[i].error;
    EXPECT_EQ(results[i].bytes_deduped, size);
    ASSERT_OK_AND_ASSIGN(bool shared, SharesAllExtents(source.get(), copies[i].get()));
    EXPECT_TRUE(shared) << names[i + 1];
  }
}

TEST_F(DedupeIoctlTest, RangeVariantSharesAPartOfEachFile) {
  // b holds a's bytes [1 MiB, 3 MiB) at offset 4 MiB.
  const std::string a_bytes = PatternBytes(4 * kMiB, 8);
  std::string b_bytes = PatternBytes(8 * kMiB, 9);
  b_bytes.replace(4 * kMiB, 2 * kMiB, a_bytes.substr(kMiB, 2 * kMiB));
  ASSERT_OK(WriteFile(Path("a"), a_bytes));
  ASSERT_OK(WriteFile(Path("b"), b_bytes));
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));

  const DedupeTarget targets[] = {{b.get(), 4 * kMiB}};
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeResult> results,
                       DedupeRange(a.get(), kMiB, 2 * kMiB, targets));
  EXPECT_EQ(results[0].kind, Kind::kDeduped) << results[0].error;
  EXPECT_EQ(results[0].bytes_deduped, 2 * kMiB);
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(SharingSummary summary, SummarizeSharing(b.get()));
  EXPECT_EQ(summary.shared_bytes, 2 * kMiB);
  ASSERT_OK_AND_ASSIGN(std::string b_after, ReadFile(Path("b")));
  EXPECT_TRUE(b_after == b_bytes);
}

// btrfs does not refuse a destination in a read-only snapshot: the bytes are
// compared first, so the snapshot's contents cannot change; only which
// extents hold them does. (A kernel patch to refuse it was withdrawn in 2019.)
TEST_F(DedupeIoctlTest, DedupeIntoReadOnlySnapshotIsAllowedByBtrfs) {
  const uint64_t size = kMiB;
  ASSERT_OK(RunChecked({"btrfs", "subvolume", "create", Path("vol")}));
  ASSERT_OK(WriteCopies({"source", "vol/file"}, size, 10));
  ASSERT_OK(RunChecked({"btrfs", "subvolume", "snapshot", "-r", Path("vol"), Path("snap")}));
  ASSERT_OK_AND_ASSIGN(UniqueFd source, OpenPath(Path("source"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd frozen, OpenPath(Path("snap/file"), O_RDONLY));

  const int dests[] = {frozen.get()};
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeResult> results,
                       DedupeFile(source.get(), size, dests));
  EXPECT_EQ(results[0].kind, Kind::kDeduped) << results[0].error;
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(bool shared, SharesAllExtents(source.get(), frozen.get()));
  EXPECT_TRUE(shared);
  ASSERT_OK_AND_ASSIGN(std::string contents, ReadFile(Path("snap/file")));
  EXPECT_TRUE(contents == PatternBytes(size, 10));
  ASSERT_OK_AND_ASSIGN(std::string ro,
                       RunChecked({"btrfs", "property", "get", Path("snap"), "ro"}));
  EXPECT_THAT(ro, HasSubstr("ro=true"));
}

TEST_F(DedupeIoctlTest, DedupeOnReadOnlyMountIsRefusedClearly) {
  const uint64_t size = kMiB;
  ASSERT_OK(WriteCopies({"a", "b"}, size, 13));
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));
  ASSERT_OK(RunChecked({"mount", "-o", "remount,ro", mount_path()}));

  const int dests[] = {b.get()};
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeResult> results, DedupeFile(a.get(), size, dests));
  EXPECT_EQ(results[0].kind, Kind::kFailed);
  EXPECT_EQ(results[0].bytes_deduped, 0u);
  EXPECT_TRUE(absl::IsFailedPrecondition(results[0].error)) << results[0].error;
  const std::string message(results[0].error.message());
  EXPECT_THAT(message, HasSubstr(Path("b")));
  EXPECT_THAT(message, HasSubstr("Read-only file system"));
  EXPECT_THAT(message, HasSubstr("read-only mount"));
}

TEST_F(DedupeIoctlTest, OneFailingDestinationDoesNotStopTheOthers) {
  const uint64_t size = kMiB;
  ASSERT_OK(WriteCopies({"a", "b", "c"}, size, 11));
  ASSERT_OK(RunChecked({"mkdir", Path("dir")}));
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd dir, OpenPath(Path("dir"), O_RDONLY | O_DIRECTORY));
  ASSERT_OK_AND_ASSIGN(UniqueFd c, OpenPath(Path("c"), O_RDONLY));

  const int dests[] = {b.get(), dir.get(), c.get()};
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeResult> results, DedupeFile(a.get(), size, dests));
  EXPECT_EQ(results[0].kind, Kind::kDeduped) << results[0].error;
  EXPECT_EQ(results[1].kind, Kind::kFailed);
  EXPECT_TRUE(absl::IsInvalidArgument(results[1].error)) << results[1].error;
  EXPECT_EQ(results[2].kind, Kind::kDeduped) << results[2].error;
}

TEST_F(DedupeIoctlTest, RangePastSourceEofIsOutOfRange) {
  ASSERT_OK(WriteCopies({"a", "b"}, kMiB, 12));
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));
  const int dests[] = {b.get()};
  absl::StatusOr<std::vector<DedupeResult>> results = DedupeFile(a.get(), 2 * kMiB, dests);
  EXPECT_TRUE(absl::IsOutOfRange(results.status())) << results.status();
}

TEST_F(DedupeIoctlTest, DirectorySourceIsInvalidArgument) {
  ASSERT_OK_AND_ASSIGN(UniqueFd root, OpenPath(mount_path(), O_RDONLY | O_DIRECTORY));
  absl::StatusOr<std::vector<DedupeResult>> results = DedupeFile(root.get(), 0, {});
  EXPECT_TRUE(absl::IsInvalidArgument(results.status())) << results.status();
}

// With compression every extent is "encoded": FIEMAP reports the compressed
// extent's start for each piece, so sharing is judged extent by extent.
class CompressedDedupeIoctlTest : public DedupeIoctlTest {
 protected:
  btrdupd::testing::LoopBtrfs::Options FilesystemOptions() const override {
    btrdupd::testing::LoopBtrfs::Options options;
    options.mount_options = "compress-force=zstd";
    return options;
  }
};

TEST_F(CompressedDedupeIoctlTest, CompressedCopiesShareAllExtentsAfterDedupe) {
  std::string text;
  while (text.size() < 6 * kMiB) absl::StrAppend(&text, "line ", text.size() % 977, "\n");
  ASSERT_OK(WriteFile(Path("a"), text));
  ASSERT_OK(WriteFile(Path("b"), text));
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(UniqueFd a, OpenPath(Path("a"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(UniqueFd b, OpenPath(Path("b"), O_RDONLY));
  ASSERT_OK_AND_ASSIGN(std::vector<Extent> extents, ReadExtents(a.get()));
  ASSERT_FALSE(extents.empty());
  EXPECT_TRUE(extents[0].encoded);
  ASSERT_OK_AND_ASSIGN(bool shared_before, SharesAllExtents(a.get(), b.get()));
  EXPECT_FALSE(shared_before);

  const int dests[] = {b.get()};
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeResult> results,
                       DedupeFile(a.get(), text.size(), dests));
  EXPECT_EQ(results[0].kind, Kind::kDeduped) << results[0].error;
  ASSERT_OK(Sync());
  ASSERT_OK_AND_ASSIGN(bool shared_after, SharesAllExtents(a.get(), b.get()));
  EXPECT_TRUE(shared_after);
  ASSERT_OK_AND_ASSIGN(std::string b_after, ReadFile(Path("b")));
  EXPECT_TRUE(b_after == text);
}

}  // namespace
}  // namespace btrdupd
