// The VolumeFs contract (core/volume_fs.h) for change tracking: ChangedInodesSince,
// the generations ListSubvolumes reports, and InodePath; case by case from the header's
// words, run on the fake (tests/testing/fake_volume_fs.h) and on RealVolumeFs over a
// fresh loopback btrfs. Searches start from a committed inode's transid, or from a listed
// generation, as the scanner's do.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/volume_fs.h"
#include "tests/testing/status_macros.h"
#include "tests/testing/volume_fs_contract.h"

namespace btrdupd {
namespace testing {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;

// "Each comes with the size and mtime its item holds" (what stat says), and its type.
TEST_P(VolumeFsContract, AChangedInodeCarriesItsSizeMtimeAndType) {
  ASSERT_OK(world_->WriteFile("f", 12345));
  ASSERT_OK(world_->MakeDir("d"));
  ASSERT_OK(world_->Symlink("l"));
  ASSERT_OK(world_->Commit());
  ASSERT_OK_AND_ASSIGN(VolumeStat f, fs_->Stat("f"));
  ASSERT_OK_AND_ASSIGN(uint64_t d, Ino("d"));
  ASSERT_OK_AND_ASSIGN(uint64_t l, Ino("l"));
  ASSERT_OK_AND_ASSIGN(auto all, Changes("", 0));
  ASSERT_EQ(all.count(f.ino), 1u);
  EXPECT_EQ(all[f.ino].size, 12345u);
  EXPECT_EQ(all[f.ino].mtime_ns, f.mtime_ns);
  EXPECT_TRUE(all[f.ino].is_regular);
  EXPECT_FALSE(all[f.ino].is_dir);
  ASSERT_EQ(all.count(d), 1u);
  EXPECT_TRUE(all[d].is_dir);
  EXPECT_FALSE(all[d].is_regular);
  ASSERT_EQ(all.count(l), 1u);
  EXPECT_FALSE(all[l].is_dir);
  EXPECT_FALSE(all[l].is_regular);
}

// "lists the inodes of that subvolume whose item was written in a transaction after G
// (transid > G): files whose data or metadata changed, and directories whose entries
// changed."
TEST_P(VolumeFsContract, ChangedInodesSinceListsExactlyWhatWasWrittenAfterG) {
  ASSERT_OK(world_->MakeDir("quiet"));
  ASSERT_OK(world_->WriteFile("quiet/untouched", 9000));
  ASSERT_OK(world_->WriteFile("modified", 9000));
  ASSERT_OK_AND_ASSIGN(uint64_t g, CommittedTransid(""));
  ASSERT_OK(world_->WriteFile("new", 5000));
  ASSERT_OK(world_->WriteFile("modified", 9001));
  ASSERT_OK(world_->Commit());
  ASSERT_OK_AND_ASSIGN(uint64_t new_ino, Ino("new"));
  ASSERT_OK_AND_ASSIGN(uint64_t modified, Ino("modified"));
  ASSERT_OK_AND_ASSIGN(uint64_t quiet, Ino("quiet"));
  ASSERT_OK_AND_ASSIGN(uint64_t untouched, Ino("quiet/untouched"));

  ASSERT_OK_AND_ASSIGN(auto changed, Changes("", g));
  EXPECT_THAT(Inos(changed), Contains(new_ino));
  EXPECT_THAT(Inos(changed), Contains(modified));
  EXPECT_THAT(Inos(changed), Contains(kRootInode));  // gained an entry
  EXPECT_THAT(Inos(changed), Not(Contains(untouched)));
  EXPECT_THAT(Inos(changed), Not(Contains(quiet)));
  for (const auto& [ino, change] : changed) EXPECT_GT(change.transid, g) << ino;
}

TEST_P(VolumeFsContract, NothingChangedMeansNothingListed) {
  ASSERT_OK(world_->WriteFile("f", 9000));
  ASSERT_OK_AND_ASSIGN(uint64_t g, CommittedTransid(""));
  ASSERT_OK_AND_ASSIGN(auto changed, Changes("", g));
  EXPECT_THAT(Inos(changed), IsEmpty());
}

// generation: "each change made after ListSubvolumes() returned has transid >
// generation". (Not that the next listing's is higher: btrfs reports one less while the
// newest transaction may still run.)
TEST_P(VolumeFsContract, AChangeAfterTheListingIsAboveTheListedGeneration) {
  ASSERT_OK(world_->WriteFile("f", 9000));
  ASSERT_OK(world_->Commit());
  ASSERT_OK_AND_ASSIGN(auto before, Subvolumes());
  ASSERT_OK(world_->WriteFile("f", 9001));
  ASSERT_OK(world_->Commit());
  ASSERT_OK_AND_ASSIGN(uint64_t f, Ino("f"));
  ASSERT_OK_AND_ASSIGN(auto changed, Changes("", before[""].generation));
  EXPECT_THAT(Inos(changed), Contains(f));
}

// "Deleted inodes are not listed"; the directory that lost the entry is.
TEST_P(VolumeFsContract, ADirectoryThatLostAnEntryIsChangedTheDeletedInodeIsGone) {
  ASSERT_OK(world_->MakeDir("d"));
  ASSERT_OK(world_->WriteFile("d/victim", 10000));
  ASSERT_OK_AND_ASSIGN(uint64_t victim, Ino("d/victim"));
  ASSERT_OK_AND_ASSIGN(uint64_t d, Ino("d"));
  ASSERT_OK_AND_ASSIGN(uint64_t g, CommittedTransid(""));
  ASSERT_OK(world_->Remove("d/victim"));
  ASSERT_OK(world_->Commit());
  ASSERT_OK_AND_ASSIGN(auto changed, Changes("", g));
  EXPECT_THAT(Inos(changed), ElementsAre(d));
  EXPECT_THAT(Inos(changed), Not(Contains(victim)));
}

// A rename writes both directories and the renamed inode (its ctime).
TEST_P(VolumeFsContract, ARenameChangesBothDirectoriesAndTheInode) {
  ASSERT_OK(world_->MakeDir("from"));
  ASSERT_OK(world_->MakeDir("to"));
  ASSERT_OK(world_->MakeDir("quiet"));
  ASSERT_OK(world_->WriteFile("from/f", 100));
  ASSERT_OK_AND_ASSIGN(uint64_t g, CommittedTransid(""));
  ASSERT_OK(world_->Rename("from/f", "to/f"));
  ASSERT_OK(world_->Commit());
  ASSERT_OK_AND_ASSIGN(uint64_t from, Ino("from"));
  ASSERT_OK_AND_ASSIGN(uint64_t to, Ino("to"));
  ASSERT_OK_AND_ASSIGN(uint64_t f, Ino("to/f"));
  ASSERT_OK_AND_ASSIGN(auto changed, Changes("", g));
  std::vector<uint64_t> expected = {from, to, f};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(Inos(changed), expected);
}

// "files whose ... metadata changed" are listed, with the size and mtime unchanged.
TEST_P(VolumeFsContract, AMetadataOnlyChangeIsListedWithTheSameSizeAndMtime) {
  ASSERT_OK(world_->WriteFile("f", 7000));
  ASSERT_OK_AND_ASSIGN(VolumeStat before, fs_->Stat("f"));
  ASSERT_OK_AND_ASSIGN(uint64_t g, CommittedTransid(""));
  ASSERT_OK(world_->TouchMetadata("f"));
  ASSERT_OK(world_->Commit());
  ASSERT_OK_AND_ASSIGN(auto changed, Changes("", g));
  EXPECT_THAT(Inos(changed), ElementsAre(before.ino));
  ASSERT_EQ(changed.count(before.ino), 1u);
  EXPECT_EQ(changed[before.ino].size, 7000u);
  EXPECT_EQ(changed[before.ino].mtime_ns, before.mtime_ns);
}

// "Each comes with the size, mtime and ctime its item holds": a chmod moves the ctime,
// and the listed one is what stat says.
TEST_P(VolumeFsContract, AChangeIsListedWithTheCtimeStatSays) {
  ASSERT_OK(world_->WriteFile("f", 7000));
  ASSERT_OK_AND_ASSIGN(VolumeStat before, fs_->Stat("f"));
  ASSERT_OK_AND_ASSIGN(uint64_t g, CommittedTransid(""));
  ASSERT_OK(world_->TouchMetadata("f"));
  ASSERT_OK(world_->Commit());
  ASSERT_OK_AND_ASSIGN(VolumeStat after, fs_->Stat("f"));
  ASSERT_OK_AND_ASSIGN(auto changed, Changes("", g));
  ASSERT_EQ(changed.count(before.ino), 1u);
  EXPECT_NE(before.ctime_ns, 0);
  EXPECT_NE(after.ctime_ns, before.ctime_ns);
  EXPECT_EQ(changed[before.ino].ctime_ns, after.ctime_ns);
}

// "the inodes of that subvolume": nested subvolumes are searched on their own.
TEST_P(VolumeFsContract, TheSearchStaysInsideTheSubvolume) {
  ASSERT_OK(world_->CreateSubvolume("sub"));
  ASSERT_OK(world_->WriteFile("sub/inner", 777));
  ASSERT_OK(world_->WriteFile("outer", 888));
  ASSERT_OK(world_->Commit());
  std::vector<uint64_t> sizes_in_sub, sizes_in_top;
  ASSERT_OK_AND_ASSIGN(auto in_sub, Changes("sub", 0));
  for (const auto& [ino, c] : in_sub) {
    if (c.is_regular) sizes_in_sub.push_back(c.size);
  }
  ASSERT_OK_AND_ASSIGN(auto in_top, Changes("", 0));
  for (const auto& [ino, c] : in_top) {
    if (c.is_regular) sizes_in_top.push_back(c.size);
  }
  EXPECT_THAT(sizes_in_sub, ElementsAre(777u));
  EXPECT_THAT(sizes_in_top, ElementsAre(888u));
}

// "InodePath(subvol, ino) names one path of an inode inside a subvolume (any type)",
// "" for its root directory.
TEST_P(VolumeFsContract, InodePathNamesADirectoryAFileAndTheRoot) {
  ASSERT_OK(world_->MakeDir("a"));
  ASSERT_OK(world_->MakeDir("a/b b"));
  ASSERT_OK(world_->MakeDir("a/b b/c"));
  ASSERT_OK(world_->WriteFile("a/b b/c/f", 10));
  ASSERT_OK(world_->Commit());
  ASSERT_OK_AND_ASSIGN(uint64_t c, Ino("a/b b/c"));
  ASSERT_OK_AND_ASSIGN(uint64_t f, Ino("a/b b/c/f"));
  ASSERT_OK_AND_ASSIGN(std::string dir_path, fs_->InodePath("", c));
  EXPECT_EQ(dir_path, "a/b b/c");
  ASSERT_OK_AND_ASSIGN(std::string file_path, fs_->InodePath("", f));
  EXPECT_EQ(file_path, "a/b b/c/f");
  ASSERT_OK_AND_ASSIGN(std::string root_path, fs_->InodePath("", kRootInode));
  EXPECT_EQ(root_path, "");
}

TEST_P(VolumeFsContract, InodePathIsRelativeToTheSubvolume) {
  ASSERT_OK(world_->CreateSubvolume("sub"));
  ASSERT_OK(world_->MakeDir("sub/x"));
  ASSERT_OK(world_->MakeDir("sub/x/y"));
  ASSERT_OK(world_->Commit());
  ASSERT_OK_AND_ASSIGN(uint64_t y, Ino("sub/x/y"));
  ASSERT_OK_AND_ASSIGN(std::string path, fs_->InodePath("sub", y));
  EXPECT_EQ(path, "x/y");
}

// created_generation: "A snapshot is its source as of this transaction: every item
// either of them wrote afterwards has a larger transid."
TEST_P(VolumeFsContract, ASnapshotIsItsSourceAsOfItsCreatedGeneration) {
  ASSERT_OK(world_->CreateSubvolume("vol"));
  ASSERT_OK(world_->WriteFile("vol/old", 5000));
  ASSERT_OK(world_->Commit());
  ASSERT_OK(world_->Snapshot("vol", "snap", /*read_only=*/false));
  ASSERT_OK_AND_ASSIGN(auto subs, Subvolumes());
  const uint64_t created = subs["snap"].created_generation;
  ASSERT_GT(created, 0u);
  ASSERT_OK_AND_ASSIGN(uint64_t old_ino, Ino("vol/old"));
  ASSERT_OK(world_->WriteFile("vol/new", 100));
  ASSERT_OK(world_->WriteFile("snap/mine", 100));
  ASSERT_OK(world_->Commit());
  ASSERT_OK_AND_ASSIGN(uint64_t new_ino, Ino("vol/new"));
  ASSERT_OK_AND_ASSIGN(uint64_t mine_ino, Ino("snap/mine"));

  ASSERT_OK_AND_ASSIGN(auto in_vol, Changes("vol", created));
  EXPECT_THAT(Inos(in_vol), Contains(new_ino));
  EXPECT_THAT(Inos(in_vol), Not(Contains(old_ino)));
  ASSERT_OK_AND_ASSIGN(auto in_snap, Changes("snap", created));
  EXPECT_THAT(Inos(in_snap), Contains(mine_ino));
  EXPECT_THAT(Inos(in_snap), Not(Contains(old_ino)));
}

INSTANTIATE_TEST_SUITE_P(Impls, VolumeFsContract, ::testing::Values(VolumeImpl::kFake, VolumeImpl::kReal),
                         ImplName);

}  // namespace
}  // namespace testing
}  // namespace btrdupd
