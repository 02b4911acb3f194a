// TREE_SEARCH_V2 change detection and the subvolume generation on a real loopback
// btrfs: what only this layer shows (the item's mode and link count, the root item of a
// fresh filesystem, searches longer than one buffer, the generation btrfs-progs shows).
// Which inodes a search lists and INO_LOOKUP's paths are held to the kernel through
// RealVolumeFs by the VolumeFs contract suites (tests/volume_fs_*contract_test.cc).

#include "ioctl/tree_search.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "ioctl/errno_status.h"
#include "ioctl/filesystem.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::RunChecked;
using ::btrdupd::testing::WriteFile;
using ::btrdupd::testing::WritePatternFile;
using ::testing::Contains;

class TreeSearchIoctlTest : public btrdupd::testing::BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_OK_AND_ASSIGN(root_, OpenPath(mount_path(), O_RDONLY | O_DIRECTORY));
  }

  absl::StatusOr<uint64_t> Ino(const std::string& relative) {
    struct stat st;
    if (stat(Path(relative).c_str(), &st) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("stat ", relative));
    }
    return st.st_ino;
  }

  // Commits the running transaction (delayed inode updates reach the tree) and returns
  // the subvolume generation.
  absl::StatusOr<uint64_t> CommitAndGetGeneration() {
    RETURN_IF_ERROR(SyncFilesystem(root_.get()));
    return SubvolumeGeneration(root_.get());
  }

  static std::vector<uint64_t> Inos(const std::vector<InodeItem>& inodes) {
    std::vector<uint64_t> inos;
    for (const InodeItem& inode : inodes) inos.push_back(inode.ino);
    return inos;
  }

  UniqueFd root_;
};

// The item's size, mtime and type are held to stat by the VolumeFs contract; mode and
// link count are this layer's alone.
TEST_F(TreeSearchIoctlTest, ChangedInodeCarriesModeAndLinkCount) {
  ASSERT_OK(WritePatternFile(Path("f"), 12345, 4));
  ASSERT_OK(SyncFilesystem(root_.get()));
  ASSERT_OK_AND_ASSIGN(std::vector<InodeItem> all, ChangedInodesSince(root_.get(), 0));
  struct stat st;
  ASSERT_EQ(stat(Path("f").c_str(), &st), 0);
  auto file = std::find_if(all.begin(), all.end(),
                           [&](const InodeItem& c) { return c.ino == st.st_ino; });
  ASSERT_NE(file, all.end());
  EXPECT_EQ(file->mode, st.st_mode);
  EXPECT_EQ(file->nlink, 1u);
}

TEST_F(TreeSearchIoctlTest, FreshRootDirectoryIsReportedFromGenerationZero) {
  // mkfs leaves the root directory's INODE_ITEM with transid 0.
  ASSERT_OK_AND_ASSIGN(std::vector<InodeItem> all, ChangedInodesSince(root_.get(), 0));
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front().ino, kSubvolumeRootInode);
  EXPECT_TRUE(all.front().is_directory());
}

TEST_F(TreeSearchIoctlTest, UncommittedChangeIsFoundOncePastGenerationIsCommitted) {
  ASSERT_OK(WritePatternFile(Path("f"), 100000, 8));
  ASSERT_OK_AND_ASSIGN(const uint64_t g, CommitAndGetGeneration());
  ASSERT_OK(WritePatternFile(Path("late"), 4096, 9));
  // Whether the new inode is visible before the commit depends on btrfs's
  // delayed-inode flushing; what matters is that the generation read now is
  // below its transid, so the next search from here finds it.
  ASSERT_OK_AND_ASSIGN(uint64_t next_start, SubvolumeGeneration(root_.get()));
  EXPECT_EQ(next_start, g);
  ASSERT_OK(SyncFilesystem(root_.get()));
  ASSERT_OK_AND_ASSIGN(std::vector<InodeItem> changed,
                       ChangedInodesSince(root_.get(), next_start));
  ASSERT_OK_AND_ASSIGN(const uint64_t late, Ino("late"));
  EXPECT_THAT(Inos(changed), Contains(late));
}

TEST_F(TreeSearchIoctlTest, ManyChangesSpanSeveralSearchCalls) {
  constexpr int kFiles = 3000;  // several hundred KiB of items: > one buffer
  ASSERT_EQ(mkdir(Path("many").c_str(), 0755), 0);
  ASSERT_OK_AND_ASSIGN(const uint64_t g, CommitAndGetGeneration());
  std::vector<uint64_t> expected;
  for (int i = 0; i < kFiles; ++i) {
    const std::string name = absl::StrCat("many/file-with-a-longish-name-", i);
    ASSERT_OK(WriteFile(Path(name), std::string(100 + i % 1000, 'm')));
    ASSERT_OK_AND_ASSIGN(const uint64_t ino, Ino(name));
    expected.push_back(ino);
  }
  ASSERT_OK(SyncFilesystem(root_.get()));
  ASSERT_OK_AND_ASSIGN(std::vector<InodeItem> changed, ChangedInodesSince(root_.get(), g));
  const std::vector<uint64_t> inos = Inos(changed);
  for (uint64_t ino : expected) ASSERT_THAT(inos, Contains(ino));
  EXPECT_EQ(inos.size(), expected.size() + 1);  // + "many"; the root did not change
  for (size_t i = 1; i < inos.size(); ++i) EXPECT_LT(inos[i - 1], inos[i]);
}

TEST_F(TreeSearchIoctlTest, GenerationAdvancesWhenTheSubvolumeChanges) {
  ASSERT_OK_AND_ASSIGN(const uint64_t before, CommitAndGetGeneration());
  ASSERT_OK(WriteFile(Path("f"), "change"));
  ASSERT_OK_AND_ASSIGN(const uint64_t after, CommitAndGetGeneration());
  EXPECT_GT(after, before);
  // Matches what btrfs-progs reports.
  ASSERT_OK_AND_ASSIGN(std::string show,
                       RunChecked({"btrfs", "subvolume", "show", mount_path()}));
  EXPECT_THAT(show, ::testing::ContainsRegex(absl::StrCat("Generation:[ \t]+", after, "\n")));
}

}  // namespace
}  // namespace btrdupd
