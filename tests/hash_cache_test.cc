// RealFileAccess with a keep-cached budget (what VolumeSession uses): the pages of the
// files hashed last stay in the page cache, up to the budget, so the kernel's compare
// during the dedupe that follows needs no disk reads; older ones are dropped beyond the
// budget, a file larger than the budget is dropped as it is read, and everything kept
// is dropped when the RealFileAccess goes away. On a real loopback btrfs.

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "daemon/real_file_access.h"
#include "gtest/gtest.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/file_refs.h"
#include "tests/testing/files.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::BtrfsTest;
using ::btrdupd::testing::ResidentPages;
using ::btrdupd::testing::WritePatternFile;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kFileSize = 3 * kMiB;

void Evict(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  fdatasync(fd);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
  ASSERT_EQ(ResidentPages(path, kFileSize), 0u) << path;
}

void HashRead(RealFileAccess& files, const FileRef& ref) {
  absl::StatusOr<std::unique_ptr<SequentialFile>> file = files.OpenForRead(ref);
  ASSERT_TRUE(file.ok()) << file.status();
  std::string buf(kMiB, '\0');
  while (true) {
    absl::StatusOr<size_t> got = (*file)->Read(buf.data(), buf.size());
    ASSERT_TRUE(got.ok()) << got.status();
    if (*got == 0) break;
  }
}

class HashCacheTest : public BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    for (const char* name : {"a", "b", "c"}) {
      ASSERT_TRUE(WritePatternFile(Path(name), kFileSize, name[0]).ok());
      ASSERT_NO_FATAL_FAILURE(Evict(Path(name)));
    }
  }
  size_t Resident(const char* name) { return ResidentPages(Path(name), kFileSize); }
  FileRef Ref(const char* name) { return testing::RefFor(mount_path(), name); }
  FileOpener& opener() {
    if (opener_ == nullptr) {
      absl::StatusOr<std::unique_ptr<FileOpener>> opened = FileOpener::Open(mount_path());
      EXPECT_TRUE(opened.ok()) << opened.status();
      opener_ = *std::move(opened);
    }
    return *opener_;
  }
  std::unique_ptr<FileOpener> opener_;
  const size_t all_pages_ = kFileSize / static_cast<size_t>(sysconf(_SC_PAGESIZE));
};

TEST_F(HashCacheTest, KeepsTheLastHashedFilesWithinTheBudgetAndDropsAllAtTheEnd) {
  {
    RealFileAccess files(&opener(), 8 * kMiB);
    ASSERT_NO_FATAL_FAILURE(HashRead(files, Ref("a")));
    ASSERT_NO_FATAL_FAILURE(HashRead(files, Ref("b")));
    EXPECT_EQ(Resident("a"), all_pages_);
    EXPECT_EQ(Resident("b"), all_pages_);
    ASSERT_NO_FATAL_FAILURE(HashRead(files, Ref("c")));  // 9 MiB > 8 MiB: the oldest, a, goes
    EXPECT_EQ(Resident("a"), 0u);
    EXPECT_EQ(Resident("b"), all_pages_);
    EXPECT_EQ(Resident("c"), all_pages_);
  }
  EXPECT_EQ(Resident("b"), 0u);
  EXPECT_EQ(Resident("c"), 0u);
}

TEST_F(HashCacheTest, FileLargerThanTheBudgetIsDroppedAsRead) {
  RealFileAccess files(&opener(), 1 * kMiB);
  ASSERT_NO_FATAL_FAILURE(HashRead(files, Ref("a")));
  EXPECT_EQ(Resident("a"), 0u);
}

TEST_F(HashCacheTest, WithoutABudgetNothingStaysCached) {
  RealFileAccess files(&opener());
  ASSERT_NO_FATAL_FAILURE(HashRead(files, Ref("a")));
  EXPECT_EQ(Resident("a"), 0u);
}

// Waits (up to 5 s) until all of `name` is cached: WILLNEED reads in the background.
bool BecomesResident(const std::string& path, size_t pages) {
  for (int i = 0; i < 500; ++i) {
    if (ResidentPages(path, kFileSize) == pages) return true;
    usleep(10000);
  }
  return false;
}

TEST_F(HashCacheTest, PrefetchReadsAheadAndWhatWasHintedGoesWithTheRead) {
  RealFileAccess files(&opener());
  files.Prefetch(Ref("a"), kFileSize);
  EXPECT_TRUE(BecomesResident(Path("a"), all_pages_));
  {
    // Only the first 64 KiB are read (a prefix): the hinted rest is dropped too.
    absl::StatusOr<std::unique_ptr<SequentialFile>> file = files.OpenForRead(Ref("a"));
    ASSERT_TRUE(file.ok()) << file.status();
    std::string buf(64 * 1024, '\0');
    ASSERT_TRUE((*file)->Read(buf.data(), buf.size()).ok());
  }
  EXPECT_EQ(Resident("a"), 0u);
}

TEST_F(HashCacheTest, HintsNeverReadAreDroppedWhenTheAccessGoesAway) {
  {
    RealFileAccess files(&opener(), 8 * kMiB);
    files.Prefetch(Ref("b"), kFileSize);
    EXPECT_TRUE(BecomesResident(Path("b"), all_pages_));
  }
  EXPECT_EQ(Resident("b"), 0u);
}

TEST_F(HashCacheTest, HintedFileReadWithinTheBudgetIsKeptThenDroppedAtTheEnd) {
  {
    RealFileAccess files(&opener(), 8 * kMiB);
    files.Prefetch(Ref("c"), kFileSize);
    ASSERT_NO_FATAL_FAILURE(HashRead(files, Ref("c")));
    EXPECT_EQ(Resident("c"), all_pages_);
  }
  EXPECT_EQ(Resident("c"), 0u);
}

}  // namespace
}  // namespace btrdupd
