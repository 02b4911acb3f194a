// Extent items and backrefs (ioctl/extent_refs.h) on a real loopback btrfs, and the
// pure combination with FIEMAP's SHARED flags.

#include "ioctl/extent_refs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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
using ::btrdupd::testing::RunShellChecked;
using ::btrdupd::testing::WritePatternFile;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kTopLevel = 5;

FileExtentItem Item(uint64_t file_offset, uint64_t length, uint64_t bytenr,
                    uint64_t disk_bytes) {
  FileExtentItem i;
  i.file_offset = file_offset;
  i.length = length;
  i.disk_bytenr = bytenr;
  i.disk_bytes = disk_bytes;
  return i;
}

Extent Fiemap(uint64_t logical, uint64_t length, bool shared) {
  Extent e;
  e.logical = logical;
  e.physical = 1 << 30;
  e.length = length;
  e.shared = shared;
  return e;
}

// --- DiskExtentsOf: pure ---

TEST(DiskExtentsOfTest, EachExtentOnceWithItsWholeSize) {
  // The file uses two pieces of one 1 MiB extent (a bookend) and a hole.
  const std::vector<FileExtentItem> items = {Item(0, 4096, 1000000, kMiB),
                                             Item(4096, 8192, 0, 0),
                                             Item(12288, 8192, 1000000, kMiB)};
  const std::vector<DiskExtent> disk = DiskExtentsOf(items, {Fiemap(0, 4096, false)});
  ASSERT_EQ(disk.size(), 1u);
  EXPECT_EQ(disk[0].bytenr, 1000000u);
  EXPECT_EQ(disk[0].disk_bytes, kMiB);
  // Referred to twice by the file itself: another reference, so shared.
  EXPECT_TRUE(disk[0].shared);
}

TEST(DiskExtentsOfTest, SharedWhenAnOverlappingFiemapExtentIsShared) {
  const std::vector<FileExtentItem> items = {Item(0, kMiB, 1000000, kMiB),
                                             Item(kMiB, kMiB, 9000000, kMiB)};
  const std::vector<DiskExtent> disk =
      DiskExtentsOf(items, {Fiemap(0, kMiB, false), Fiemap(kMiB, kMiB, true)});
  ASSERT_EQ(disk.size(), 2u);
  EXPECT_FALSE(disk[0].shared);
  EXPECT_TRUE(disk[1].shared);
}

TEST(DiskExtentsOfTest, InlineDataHasNoDiskExtent) {
  FileExtentItem inline_item;
  inline_item.inline_data = true;
  inline_item.length = 100;
  EXPECT_TRUE(DiskExtentsOf({inline_item}, {}).empty());
}

// --- On a real btrfs ---

class ExtentRefsTest : public testing::BtrfsTest {
 protected:
  UniqueFd Open(const std::string& relative) {
    UniqueFd fd(open(Path(relative).c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_TRUE(fd.valid()) << relative;
    return fd;
  }

  static uint64_t Ino(int fd) {
    struct stat st;
    EXPECT_EQ(fstat(fd, &st), 0);
    return st.st_ino;
  }

  // ReadExtents (which syncs) then the items and their combination.
  static std::vector<DiskExtent> DiskExtents(int fd) {
    absl::StatusOr<std::vector<Extent>> fiemap = ReadExtents(fd);
    EXPECT_OK(fiemap);
    absl::StatusOr<std::vector<FileExtentItem>> items = ReadFileExtentItems(fd);
    EXPECT_OK(items);
    if (!fiemap.ok() || !items.ok()) return {};
    return DiskExtentsOf(*items, *fiemap);
  }
};

bool Has(const std::vector<ExtentReferrer>& refs, uint64_t root, uint64_t ino) {
  return std::any_of(refs.begin(), refs.end(), [&](const ExtentReferrer& r) {
    return r.root == root && r.ino == ino;
  });
}

TEST_F(ExtentRefsTest, FreshFileOwnsItsExtentsAlone) {
  ASSERT_OK(WritePatternFile(Path("a"), 3 * kMiB, 1));
  UniqueFd fd = Open("a");
  const std::vector<DiskExtent> disk = DiskExtents(fd.get());
  ASSERT_FALSE(disk.empty());
  ASSERT_OK(SyncFilesystem(fd.get()));  // backrefs are walked from committed trees
  uint64_t total = 0;
  for (const DiskExtent& d : disk) {
    EXPECT_FALSE(d.shared);
    total += d.disk_bytes;
    ASSERT_OK_AND_ASSIGN(std::vector<ExtentReferrer> refs, ExtentReferrers(fd.get(), d.bytenr));
    ASSERT_EQ(refs.size(), 1u);
    EXPECT_EQ(refs[0].root, kTopLevel);
    EXPECT_EQ(refs[0].ino, Ino(fd.get()));
  }
  EXPECT_EQ(total, 3 * kMiB);
}

TEST_F(ExtentRefsTest, ReflinkCopyIsSharedAndBothAreReferrers) {
  ASSERT_OK(WritePatternFile(Path("a"), kMiB, 2));
  ASSERT_OK(RunShellChecked(
      absl::StrCat("cp --reflink=always '", Path("a"), "' '", Path("b"), "'")));
  UniqueFd a = Open("a");
  UniqueFd b = Open("b");
  const std::vector<DiskExtent> disk_a = DiskExtents(a.get());
  const std::vector<DiskExtent> disk_b = DiskExtents(b.get());
  ASSERT_EQ(disk_a.size(), 1u);
  ASSERT_EQ(disk_b.size(), 1u);
  EXPECT_EQ(disk_a[0].bytenr, disk_b[0].bytenr);
  EXPECT_TRUE(disk_a[0].shared);
  ASSERT_OK(SyncFilesystem(a.get()));
  ASSERT_OK_AND_ASSIGN(std::vector<ExtentReferrer> refs,
                       ExtentReferrers(a.get(), disk_a[0].bytenr));
  EXPECT_EQ(refs.size(), 2u);
  EXPECT_TRUE(Has(refs, kTopLevel, Ino(a.get())));
  EXPECT_TRUE(Has(refs, kTopLevel, Ino(b.get())));
}

TEST_F(ExtentRefsTest, SnapshotCopyIsAReferrerThroughTheSharedTreeBlock) {
  ASSERT_OK(RunShellChecked(absl::StrCat("btrfs -q subvolume create '", Path("sv"), "'")));
  ASSERT_OK(WritePatternFile(Path("sv/a"), kMiB, 3));
  ASSERT_OK(RunShellChecked(absl::StrCat("sync; btrfs -q subvolume snapshot -r '", Path("sv"),
                                         "' '", Path("snap"), "'")));
  ASSERT_OK_AND_ASSIGN(std::string id_text,
                       RunShellChecked(absl::StrCat("btrfs inspect-internal rootid '",
                                                    Path("snap"), "'")));
  const uint64_t snap_id = std::stoull(id_text);
  UniqueFd a = Open("sv/a");
  const std::vector<DiskExtent> disk = DiskExtents(a.get());
  ASSERT_EQ(disk.size(), 1u);
  EXPECT_TRUE(disk[0].shared);  // the leaf holding the reference is shared
  ASSERT_OK_AND_ASSIGN(std::vector<ExtentReferrer> refs,
                       ExtentReferrers(a.get(), disk[0].bytenr));
  EXPECT_EQ(refs.size(), 2u);
  EXPECT_TRUE(Has(refs, snap_id, Ino(a.get())));
}

TEST_F(ExtentRefsTest, PartlyOverwrittenFileStillHoldsTheWholeOldExtent) {
  ASSERT_OK(WritePatternFile(Path("a"), kMiB, 4));
  {
    UniqueFd fd = Open("a");
    ASSERT_OK(SyncFilesystem(fd.get()));
  }
  {
    UniqueFd fd(open(Path("a").c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    const std::string head = PatternBytes(256 * 1024, 5);
    ASSERT_EQ(pwrite(fd.get(), head.data(), head.size(), 0),
              static_cast<ssize_t>(head.size()));
  }
  UniqueFd fd = Open("a");
  const std::vector<DiskExtent> disk = DiskExtents(fd.get());
  ASSERT_EQ(disk.size(), 2u);
  uint64_t total = 0;
  for (const DiskExtent& d : disk) {
    EXPECT_FALSE(d.shared);
    total += d.disk_bytes;
  }
  // The new 256 KiB plus the whole old 1 MiB extent, of which 768 KiB is still used.
  EXPECT_EQ(total, kMiB + 256 * 1024);
}

}  // namespace
}  // namespace btrdupd
