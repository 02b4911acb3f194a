// DuperemoveBackend on a real loopback btrfs: it runs the duperemove binary, shares
// destinations with the reference (the reference keeps its extents), reports changed
// files as "differs", splits by max_arg_length, copes with spaces and newlines in paths,
// and a missing binary is a start-up error.

#include "daemon/duperemove_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ioctl/errno_status.h"
#include "ioctl/fiemap.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/files.h"

namespace btrdupd {
namespace {

// A request naming files by path only (this backend still takes paths).
DedupeRequest PathRequest(const std::string& ref, const std::vector<std::string>& dests,
                          uint64_t size) {
  DedupeRequest request;
  request.reference_path = ref;
  request.destination_paths = dests;
  request.size = size;
  return request;
}

using ::btrdupd::testing::BtrfsTest;
using ::btrdupd::testing::WriteFile;
using ::btrdupd::testing::WritePatternFile;
using Kind = DedupeOutcome::Kind;

constexpr uint64_t kSize = 3 * 1024 * 1024 + 123;

std::vector<Extent> ExtentsOf(const std::string& path) {
  sync();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  absl::StatusOr<std::vector<Extent>> extents = ReadExtents(fd);
  close(fd);
  EXPECT_TRUE(extents.ok()) << extents.status();
  return extents.ok() ? *extents : std::vector<Extent>();
}

bool Shared(const std::string& a, const std::string& b) {
  return ExtentsShareAll(ExtentsOf(a), ExtentsOf(b));
}

class DuperemoveBackendTest : public BtrfsTest {
 protected:
  DuperemoveBackend MakeBackend(uint64_t max_arg_length = 1048576) {
    DuperemoveBackend::Options options;
    options.max_arg_length = max_arg_length;
    return DuperemoveBackend(options);
  }
};

TEST_F(DuperemoveBackendTest, DedupesGroupAgainstReferenceKeepingItsExtents) {
  const std::string ref = Path("ref");
  std::vector<std::string> dests = {Path("copy one"), Path("copy\ttwo"), Path("deep/copy")};
  ASSERT_EQ(mkdir(Path("deep").c_str(), 0755), 0);
  ASSERT_TRUE(WritePatternFile(ref, kSize, 7).ok());
  for (const std::string& d : dests) ASSERT_TRUE(WritePatternFile(d, kSize, 7).ok());
  const std::vector<Extent> ref_before = ExtentsOf(ref);
  ASSERT_FALSE(Shared(ref, dests[0]));

  DuperemoveBackend backend = MakeBackend();
  ASSERT_TRUE(backend.CheckAvailable().ok());
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes =
      backend.Dedupe(PathRequest(ref, dests, kSize));
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), dests.size());
  for (size_t i = 0; i < dests.size(); ++i) {
    EXPECT_EQ((*outcomes)[i].destination_path, dests[i]);
    EXPECT_EQ((*outcomes)[i].kind, Kind::kDeduped) << (*outcomes)[i].error;
    EXPECT_EQ((*outcomes)[i].bytes_deduped, kSize);
    EXPECT_TRUE(Shared(ref, dests[i])) << dests[i];
  }
  // Reference first: the reference still has the physical extents it had.
  const std::vector<Extent> ref_after = ExtentsOf(ref);
  ASSERT_EQ(ref_after.size(), ref_before.size());
  for (size_t i = 0; i < ref_after.size(); ++i) {
    EXPECT_EQ(ref_after[i].physical, ref_before[i].physical);
  }
}

TEST_F(DuperemoveBackendTest, PathWithNewlineIsDedupedToo) {
  const std::string ref = Path("ref");
  const std::string odd = Path("new\nline");
  ASSERT_TRUE(WritePatternFile(ref, kSize, 3).ok());
  ASSERT_TRUE(WritePatternFile(odd, kSize, 3).ok());
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes =
      MakeBackend().Dedupe(PathRequest(ref, {odd}, kSize));
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), 1u);
  EXPECT_EQ((*outcomes)[0].kind, Kind::kDeduped) << (*outcomes)[0].error;
  EXPECT_TRUE(Shared(ref, odd));
}

TEST_F(DuperemoveBackendTest, SmallFilesBelowDuperemovesDefaultBlockSizeAreDeduped) {
  for (uint64_t size : {uint64_t{8192}, uint64_t{20000}, uint64_t{131071}}) {
    const std::string ref = Path(absl::StrCat("ref", size));
    const std::string dest = Path(absl::StrCat("dest", size));
    const std::string odd = Path(absl::StrCat("odd\n", size));
    ASSERT_TRUE(WritePatternFile(ref, size, size).ok());
    ASSERT_TRUE(WritePatternFile(dest, size, size).ok());
    ASSERT_TRUE(WritePatternFile(odd, size, size).ok());
    for (const std::string& d : {dest, odd}) {  // whole-file mode, then argument mode
      absl::StatusOr<std::vector<DedupeOutcome>> outcomes =
          MakeBackend().Dedupe(PathRequest(ref, {d}, size));
      ASSERT_TRUE(outcomes.ok()) << outcomes.status();
      EXPECT_EQ((*outcomes)[0].kind, Kind::kDeduped) << size << " " << (*outcomes)[0].error;
      EXPECT_TRUE(Shared(ref, d)) << size;
    }
  }
}

TEST_F(DuperemoveBackendTest, ChangedFileIsReportedDiffersAndNotShared) {
  const std::string ref = Path("ref");
  const std::string same = Path("same");
  const std::string changed = Path("changed");
  ASSERT_TRUE(WritePatternFile(ref, kSize, 5).ok());
  ASSERT_TRUE(WritePatternFile(same, kSize, 5).ok());
  ASSERT_TRUE(WritePatternFile(changed, kSize, 5).ok());
  {  // the last byte changes after "hashing"
    int fd = open(changed.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "!", 1, kSize - 1), 1);
    close(fd);
  }
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes =
      MakeBackend().Dedupe(PathRequest(ref, {same, changed}, kSize));
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), 2u);
  EXPECT_EQ((*outcomes)[0].kind, Kind::kDeduped);
  EXPECT_EQ((*outcomes)[1].kind, Kind::kDiffers);
  EXPECT_TRUE(Shared(ref, same));
  EXPECT_FALSE(Shared(ref, changed));
}

TEST_F(DuperemoveBackendTest, SmallMaxArgLengthSplitsIntoSeveralRunsThatAllDedupe) {
  const std::string ref = Path("ref");
  ASSERT_TRUE(WritePatternFile(ref, kSize, 9).ok());
  std::vector<std::string> dests;
  for (int i = 0; i < 6; ++i) {
    dests.push_back(Path(absl::StrCat("d", i)));
    ASSERT_TRUE(WritePatternFile(dests.back(), kSize, 9).ok());
  }
  const uint64_t limit = ref.size() + 1 + 2 * (dests[0].size() + 1);
  EXPECT_EQ(DuperemoveBackend::SplitByArgLength(ref, dests, limit).size(), 3u);
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes =
      MakeBackend(limit).Dedupe(PathRequest(ref, dests, kSize));
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), dests.size());
  for (size_t i = 0; i < dests.size(); ++i) {
    EXPECT_EQ((*outcomes)[i].kind, Kind::kDeduped);
    EXPECT_TRUE(Shared(ref, dests[i]));
  }
}

TEST_F(DuperemoveBackendTest, MissingReferenceIsAnErrorForTheWholeRequest) {
  const std::string dest = Path("d");
  ASSERT_TRUE(WritePatternFile(dest, kSize, 1).ok());
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes =
      MakeBackend().Dedupe(PathRequest(Path("gone"), {dest}, kSize));
  EXPECT_FALSE(outcomes.ok());
  EXPECT_TRUE(absl::StrContains(outcomes.status().message(), Path("gone")));
}

TEST(DuperemoveBackendUnitTest, SplitKeepsOrderAndPutsOversizedPathsAlone) {
  std::vector<std::string> dests = {"/a", "/bb", std::string(100, 'x'), "/c"};
  auto batches = DuperemoveBackend::SplitByArgLength("/r", dests, 10);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0], (std::vector<size_t>{0, 1}));
  EXPECT_EQ(batches[1], (std::vector<size_t>{2}));
  EXPECT_EQ(batches[2], (std::vector<size_t>{3}));
}

TEST(DuperemoveBackendUnitTest, ParsesStatusAndErrorLinesConservatively) {
  const std::string output =
      "Error 2: No such file or directory while getting path to file /v/gone. Skipping.\n"
      "[0x55] Dedupe for file \"/v/changed\" had status (1) \"data changed\".\n"
      "[0x55] Dedupe for file \"/v/busy\" had status (-26) \"Text file busy\".\n"
      "Dedupe pass on 3 files completed\n";
  std::vector<DedupeOutcome> outcomes = DuperemoveBackend::ParseOutcomes(
      {"/v/ok", "/v/gone", "/v/changed", "/v/busy"}, 100, 0, output);
  ASSERT_EQ(outcomes.size(), 4u);
  EXPECT_EQ(outcomes[0].kind, Kind::kDeduped);
  EXPECT_EQ(outcomes[1].kind, Kind::kFailed);
  EXPECT_EQ(ErrnoOf(outcomes[1].error), ENOENT);
  EXPECT_EQ(outcomes[2].kind, Kind::kDiffers);
  EXPECT_EQ(outcomes[3].kind, Kind::kFailed);
  EXPECT_EQ(ErrnoOf(outcomes[3].error), ETXTBSY);

  // A run that failed as a whole claims nothing.
  outcomes = DuperemoveBackend::ParseOutcomes({"/v/a"}, 100, 139, "Segmentation fault");
  EXPECT_EQ(outcomes[0].kind, Kind::kFailed);
  EXPECT_EQ(outcomes[0].bytes_deduped, 0u);
}

TEST(DuperemoveBackendUnitTest, MissingBinaryFailsCheckAvailableWithAdvice) {
  DuperemoveBackend::Options options;
  options.binary = "duperemove-not-installed-here";
  absl::Status status = DuperemoveBackend(options).CheckAvailable();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(status.message(), "duperemove-not-installed-here"));
  EXPECT_TRUE(absl::StrContains(status.message(), "--backend=native"));
}

TEST(DuperemoveBackendUnitTest, EmptyPathMeansNotFound) {
  const char* old = getenv("PATH");
  const std::string saved = old ? old : "";
  setenv("PATH", "/nonexistent-dir", 1);
  absl::Status status = DuperemoveBackend(DuperemoveBackend::Options()).CheckAvailable();
  setenv("PATH", saved.c_str(), 1);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(status.message(), "not found in PATH"));
}

}  // namespace
}  // namespace btrdupd
