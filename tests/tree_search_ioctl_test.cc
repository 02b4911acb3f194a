// TREE_SEARCH_V2 change detection, subvolume generation and INO_LOOKUP on a
// real loopback btrfs.

#include "ioctl/tree_search.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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
using ::testing::Field;
using ::testing::Not;

class TreeSearchIoctlTest : public btrdupd::testing::BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_OK_AND_ASSIGN(root_, OpenPath(mount_path(), O_RDONLY | O_DIRECTORY));
  }

  uint64_t Ino(const std::string& relative) {
    struct stat st;
    EXPECT_EQ(stat(Path(relative).c_str(), &st), 0) << relative;
    return st.st_ino;
  }

  void Mkdir(const std::string& relative) {
    ASSERT_EQ(mkdir(Path(relative).c_str(), 0755), 0) << relative;
  }

  // Commits the running transaction: delayed inode updates reach the tree.
  void Commit() { ASSERT_OK(SyncFilesystem(root_.get())); }

  // Commits the running transaction and returns the subvolume generation.
  uint64_t CommitAndGetGeneration(int subvol_fd) {
    EXPECT_OK(SyncFilesystem(subvol_fd));
    absl::StatusOr<uint64_t> generation = SubvolumeGeneration(subvol_fd);
    EXPECT_OK(generation);
    return generation.value_or(0);
  }

  static std::vector<uint64_t> Inos(const std::vector<ChangedInode>& inodes) {
    std::vector<uint64_t> inos;
    for (const ChangedInode& inode : inodes) inos.push_back(inode.ino);
    return inos;
  }

  UniqueFd root_;
};

TEST_F(TreeSearchIoctlTest, FileWrittenAfterGenerationIsChangedUntouchedFileIsNot) {
  ASSERT_OK(WritePatternFile(Path("untouched"), 100000, 1));
  ASSERT_OK(WritePatternFile(Path("modified"), 100000, 2));
  const uint64_t g = CommitAndGetGeneration(root_.get());

  ASSERT_OK(WritePatternFile(Path("new"), 5000, 3));
  {
    ASSERT_OK_AND_ASSIGN(UniqueFd w, OpenPath(Path("modified"), O_WRONLY | O_APPEND));
    ASSERT_EQ(write(w.get(), "x", 1), 1);
  }
  Commit();
  ASSERT_OK_AND_ASSIGN(std::vector<ChangedInode> changed, ChangedInodesSince(root_.get(), g));
  const std::vector<uint64_t> inos = Inos(changed);
  EXPECT_THAT(inos, Contains(Ino("new")));
  EXPECT_THAT(inos, Contains(Ino("modified")));
  EXPECT_THAT(inos, Contains(kSubvolumeRootInode));  // gained an entry
  EXPECT_THAT(inos, Not(Contains(Ino("untouched"))));
  for (const ChangedInode& inode : changed) EXPECT_GT(inode.transid, g);
}

TEST_F(TreeSearchIoctlTest, ChangedInodeCarriesSizeModeAndMtime) {
  ASSERT_OK(WritePatternFile(Path("f"), 12345, 4));
  Mkdir("d");
  Commit();
  ASSERT_OK_AND_ASSIGN(std::vector<ChangedInode> all, ChangedInodesSince(root_.get(), 0));
  struct stat st;
  ASSERT_EQ(stat(Path("f").c_str(), &st), 0);
  bool found_file = false;
  bool found_dir = false;
  for (const ChangedInode& inode : all) {
    if (inode.ino == st.st_ino) {
      found_file = true;
      EXPECT_TRUE(inode.is_regular_file());
      EXPECT_EQ(inode.size, 12345u);
      EXPECT_EQ(inode.mode, st.st_mode);
      EXPECT_EQ(inode.nlink, 1u);
      EXPECT_EQ(inode.mtime_ns, st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
    }
    if (inode.ino == Ino("d")) {
      found_dir = true;
      EXPECT_TRUE(inode.is_directory());
    }
  }
  EXPECT_TRUE(found_file);
  EXPECT_TRUE(found_dir);
}

TEST_F(TreeSearchIoctlTest, FreshRootDirectoryIsReportedFromGenerationZero) {
  // mkfs leaves the root directory's INODE_ITEM with transid 0.
  ASSERT_OK_AND_ASSIGN(std::vector<ChangedInode> all, ChangedInodesSince(root_.get(), 0));
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front().ino, kSubvolumeRootInode);
  EXPECT_TRUE(all.front().is_directory());
}

TEST_F(TreeSearchIoctlTest, DirectoryThatLostAnEntryIsChanged) {
  Mkdir("d");
  Mkdir("quiet");
  ASSERT_OK(WriteFile(Path("d/victim"), std::string(10000, 'v')));
  ASSERT_OK(WriteFile(Path("quiet/stays"), std::string(10000, 's')));
  const uint64_t victim = Ino("d/victim");
  const uint64_t g = CommitAndGetGeneration(root_.get());

  ASSERT_EQ(unlink(Path("d/victim").c_str()), 0);
  Commit();
  ASSERT_OK_AND_ASSIGN(std::vector<ChangedInode> changed, ChangedInodesSince(root_.get(), g));
  const std::vector<uint64_t> inos = Inos(changed);
  EXPECT_THAT(inos, Contains(Ino("d")));
  EXPECT_THAT(inos, Not(Contains(victim)));  // its INODE_ITEM is gone
  EXPECT_THAT(inos, Not(Contains(Ino("quiet"))));
  EXPECT_THAT(inos, Not(Contains(Ino("quiet/stays"))));
}

TEST_F(TreeSearchIoctlTest, RenameChangesBothDirectories) {
  Mkdir("from");
  Mkdir("to");
  ASSERT_OK(WriteFile(Path("from/f"), "data data data"));
  const uint64_t g = CommitAndGetGeneration(root_.get());
  ASSERT_EQ(rename(Path("from/f").c_str(), Path("to/f").c_str()), 0);
  Commit();
  ASSERT_OK_AND_ASSIGN(std::vector<ChangedInode> changed, ChangedInodesSince(root_.get(), g));
  const std::vector<uint64_t> inos = Inos(changed);
  EXPECT_THAT(inos, Contains(Ino("from")));
  EXPECT_THAT(inos, Contains(Ino("to")));
}

TEST_F(TreeSearchIoctlTest, UncommittedChangeIsFoundOncePastGenerationIsCommitted) {
  ASSERT_OK(WritePatternFile(Path("f"), 100000, 8));
  const uint64_t g = CommitAndGetGeneration(root_.get());
  ASSERT_OK(WritePatternFile(Path("late"), 4096, 9));
  // Whether the new inode is visible before the commit depends on btrfs's
  // delayed-inode flushing; what matters is that the generation read now is
  // below its transid, so the next search from here finds it.
  ASSERT_OK_AND_ASSIGN(uint64_t next_start, SubvolumeGeneration(root_.get()));
  EXPECT_EQ(next_start, g);
  Commit();
  ASSERT_OK_AND_ASSIGN(std::vector<ChangedInode> changed,
                       ChangedInodesSince(root_.get(), next_start));
  EXPECT_THAT(Inos(changed), Contains(Ino("late")));
}

TEST_F(TreeSearchIoctlTest, NothingChangedMeansNothingReported) {
  ASSERT_OK(WritePatternFile(Path("f"), 100000, 5));
  const uint64_t g = CommitAndGetGeneration(root_.get());
  ASSERT_OK_AND_ASSIGN(std::vector<ChangedInode> changed, ChangedInodesSince(root_.get(), g));
  EXPECT_TRUE(changed.empty()) << changed.size() << " inodes, first " << changed[0].ino;
}

TEST_F(TreeSearchIoctlTest, ManyChangesSpanSeveralSearchCalls) {
  constexpr int kFiles = 3000;  // several hundred KiB of items: > one buffer
  Mkdir("many");
  const uint64_t g = CommitAndGetGeneration(root_.get());
  std::vector<uint64_t> expected;
  for (int i = 0; i < kFiles; ++i) {
    const std::string name = absl::StrCat("many/file-with-a-longish-name-", i);
    ASSERT_OK(WriteFile(Path(name), std::string(100 + i % 1000, 'm')));
    expected.push_back(Ino(name));
  }
  Commit();
  ASSERT_OK_AND_ASSIGN(std::vector<ChangedInode> changed, ChangedInodesSince(root_.get(), g));
  const std::vector<uint64_t> inos = Inos(changed);
  for (uint64_t ino : expected) ASSERT_THAT(inos, Contains(ino));
  EXPECT_EQ(inos.size(), expected.size() + 1);  // + "many"; the root did not change
  for (size_t i = 1; i < inos.size(); ++i) EXPECT_LT(inos[i - 1], inos[i]);
}

TEST_F(TreeSearchIoctlTest, SearchStaysInsideTheSubvolumeOfTheDescriptor) {
  ASSERT_OK(RunChecked({"btrfs", "subvolume", "create", Path("sub")}));
  ASSERT_OK(WritePatternFile(Path("sub/inner"), 777, 6));
  ASSERT_OK(WritePatternFile(Path("outer"), 888, 7));
  ASSERT_OK_AND_ASSIGN(UniqueFd sub, OpenPath(Path("sub"), O_RDONLY | O_DIRECTORY));
  Commit();

  ASSERT_OK_AND_ASSIGN(std::vector<ChangedInode> in_sub, ChangedInodesSince(sub.get(), 0));
  EXPECT_THAT(in_sub, Contains(Field(&ChangedInode::size, 777u)));
  EXPECT_THAT(in_sub, Not(Contains(Field(&ChangedInode::size, 888u))));
  ASSERT_OK_AND_ASSIGN(std::vector<ChangedInode> in_top, ChangedInodesSince(root_.get(), 0));
  EXPECT_THAT(in_top, Contains(Field(&ChangedInode::size, 888u)));
  EXPECT_THAT(in_top, Not(Contains(Field(&ChangedInode::size, 777u))));
}

TEST_F(TreeSearchIoctlTest, GenerationAdvancesWhenTheSubvolumeChanges) {
  const uint64_t before = CommitAndGetGeneration(root_.get());
  ASSERT_OK(WriteFile(Path("f"), "change"));
  const uint64_t after = CommitAndGetGeneration(root_.get());
  EXPECT_GT(after, before);
  // Matches what btrfs-progs reports.
  ASSERT_OK_AND_ASSIGN(std::string show,
                       RunChecked({"btrfs", "subvolume", "show", mount_path()}));
  EXPECT_THAT(show, ::testing::ContainsRegex(absl::StrCat("Generation:[ \t]+", after, "\n")));
}

TEST_F(TreeSearchIoctlTest, InodePathOfNestedDirectory) {
  ASSERT_OK(RunChecked({"mkdir", "-p", Path("a/b b/c")}));
  ASSERT_OK_AND_ASSIGN(std::string path, InodePath(root_.get(), Ino("a/b b/c")));
  EXPECT_EQ(path, "a/b b/c");
  ASSERT_OK_AND_ASSIGN(std::string top, InodePath(root_.get(), Ino("a")));
  EXPECT_EQ(top, "a");
  ASSERT_OK_AND_ASSIGN(std::string root, InodePath(root_.get(), kSubvolumeRootInode));
  EXPECT_EQ(root, "");
}

TEST_F(TreeSearchIoctlTest, InodePathIsRelativeToTheSubvolume) {
  ASSERT_OK(RunChecked({"btrfs", "subvolume", "create", Path("sub")}));
  ASSERT_OK(RunChecked({"mkdir", "-p", Path("sub/x/y")}));
  ASSERT_OK_AND_ASSIGN(UniqueFd sub, OpenPath(Path("sub"), O_RDONLY | O_DIRECTORY));
  ASSERT_OK_AND_ASSIGN(std::string path, InodePath(sub.get(), Ino("sub/x/y")));
  EXPECT_EQ(path, "x/y");
}

TEST_F(TreeSearchIoctlTest, InodePathOfMissingInodeIsNotFound) {
  absl::StatusOr<std::string> path = InodePath(root_.get(), 999999);
  EXPECT_TRUE(absl::IsNotFound(path.status())) << path.status();
}

}  // namespace
}  // namespace btrdupd
