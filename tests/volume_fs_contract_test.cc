// The VolumeFs contract (core/volume_fs.h) for what a look at the tree says: the
// subvolume listing, devices and inodes, directory entries, lstat, and the errors for
// missing things; case by case from the header's words, run on the fake
// (tests/testing/fake_volume_fs.h) and on RealVolumeFs over a fresh loopback btrfs.
// Change tracking and InodePath: tests/volume_fs_changes_contract_test.cc.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/volume_fs.h"
#include "ioctl/errno_status.h"
#include "tests/testing/status_macros.h"
#include "tests/testing/volume_fs_contract.h"

namespace btrdupd {
namespace testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Optional;

// "the root's own subvolume included (path "")"; the root is a directory, inode 256.
TEST_P(VolumeFsContract, TheRootIsTheTopLevelSubvolumesDirectory) {
  ASSERT_OK_AND_ASSIGN(auto subs, Subvolumes());
  ASSERT_EQ(subs.count(""), 1u);
  EXPECT_EQ(subs[""].id, kTopLevelId);
  EXPECT_NE(subs[""].uuid, "");
  EXPECT_EQ(subs[""].parent_uuid, "");
  EXPECT_FALSE(subs[""].read_only);
  ASSERT_OK_AND_ASSIGN(VolumeStat root, fs_->Stat(""));
  EXPECT_EQ(root.type, EntryType::kDirectory);
  EXPECT_EQ(root.ino, kRootInode);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<VolumeDir> dir, fs_->OpenDir(""));
  EXPECT_EQ(dir->self().dev, root.dev);
  EXPECT_EQ(dir->self().ino, root.ino);
  EXPECT_EQ(dir->self().type, root.type);
}

// "ListSubvolumes() returns the subvolumes reachable under the volume root", each at its
// path, each with its own id and uuid.
TEST_P(VolumeFsContract, ListsEverySubvolumeBelowTheRootAtItsPath) {
  ASSERT_OK(world_->CreateSubvolume("vol"));
  ASSERT_OK(world_->CreateSubvolume("vol/inner"));
  ASSERT_OK(world_->MakeDir("dir"));
  ASSERT_OK(world_->CreateSubvolume("dir/deep"));
  ASSERT_OK_AND_ASSIGN(auto subs, Subvolumes());
  EXPECT_THAT(Paths(subs), ElementsAre("", "dir/deep", "vol", "vol/inner"));
  for (const std::string path : {"dir/deep", "vol", "vol/inner"}) {
    EXPECT_GT(subs[path].id, kTopLevelId) << path;
    EXPECT_NE(subs[path].uuid, "") << path;
    EXPECT_EQ(subs[path].parent_uuid, "") << path;
    EXPECT_EQ(subs[path].received_uuid, "") << path;
    EXPECT_FALSE(subs[path].read_only) << path;
  }
  EXPECT_NE(subs["vol"].id, subs["vol/inner"].id);
  EXPECT_NE(subs["vol"].uuid, subs["vol/inner"].uuid);
  EXPECT_NE(subs["vol"].uuid, subs["dir/deep"].uuid);
}

TEST_P(VolumeFsContract, ADeletedSubvolumeIsNotListed) {
  ASSERT_OK(world_->CreateSubvolume("gone"));
  ASSERT_OK(world_->CreateSubvolume("kept"));
  ASSERT_OK(world_->DeleteSubvolume("gone"));
  ASSERT_OK_AND_ASSIGN(auto subs, Subvolumes());
  EXPECT_THAT(Paths(subs), ElementsAre("", "kept"));
}

// "Subvolumes hidden by another mount ... are not listed."
TEST_P(VolumeFsContract, ASubvolumeHiddenByAnotherMountIsNotListed) {
  ASSERT_OK(world_->MakeDir("d"));
  ASSERT_OK(world_->CreateSubvolume("d/hidden"));
  ASSERT_OK(world_->CreateSubvolume("seen"));
  ASSERT_OK(world_->MountForeign("d"));
  ASSERT_OK_AND_ASSIGN(auto subs, Subvolumes());
  EXPECT_THAT(Paths(subs), ElementsAre("", "seen"));
}

// st_dev "differs across btrfs subvolumes and across mounts"; a subvolume's root
// directory is inode 256; a plain directory stays on its subvolume's device.
TEST_P(VolumeFsContract, EachSubvolumeAndEachMountHasItsOwnDevice) {
  ASSERT_OK(world_->CreateSubvolume("vol"));
  ASSERT_OK(world_->WriteFile("vol/f", 100));
  ASSERT_OK(world_->MakeDir("plain"));
  ASSERT_OK(world_->MakeDir("mnt"));
  ASSERT_OK(world_->MountForeign("mnt"));
  ASSERT_OK_AND_ASSIGN(VolumeStat root, fs_->Stat(""));
  ASSERT_OK_AND_ASSIGN(VolumeStat vol, fs_->Stat("vol"));
  ASSERT_OK_AND_ASSIGN(VolumeStat file, fs_->Stat("vol/f"));
  ASSERT_OK_AND_ASSIGN(VolumeStat plain, fs_->Stat("plain"));
  ASSERT_OK_AND_ASSIGN(VolumeStat mnt, fs_->Stat("mnt"));
  EXPECT_EQ(vol.ino, kRootInode);
  EXPECT_EQ(vol.type, EntryType::kDirectory);
  EXPECT_NE(vol.dev, root.dev);
  EXPECT_EQ(file.dev, vol.dev);
  EXPECT_EQ(plain.dev, root.dev);
  EXPECT_EQ(mnt.type, EntryType::kDirectory);
  EXPECT_NE(mnt.dev, root.dev);
  EXPECT_NE(mnt.dev, vol.dev);
}

// A snapshot names its source (parent_uuid), is read-only when made so, and holds the
// source's inodes under the same numbers on its own device.
TEST_P(VolumeFsContract, ASnapshotNamesItsSourceAndKeepsItsInodeNumbers) {
  ASSERT_OK(world_->CreateSubvolume("vol"));
  ASSERT_OK(world_->WriteFile("vol/f", 5000));
  ASSERT_OK(world_->Snapshot("vol", "snap", /*read_only=*/true));
  ASSERT_OK(world_->Snapshot("vol", "rw", /*read_only=*/false));
  ASSERT_OK_AND_ASSIGN(auto subs, Subvolumes());
  EXPECT_EQ(subs["snap"].parent_uuid, subs["vol"].uuid);
  EXPECT_EQ(subs["rw"].parent_uuid, subs["vol"].uuid);
  EXPECT_NE(subs["snap"].uuid, subs["vol"].uuid);
  EXPECT_TRUE(subs["snap"].read_only);
  EXPECT_FALSE(subs["rw"].read_only);
  EXPECT_FALSE(subs["vol"].read_only);
  ASSERT_OK_AND_ASSIGN(VolumeStat in_vol, fs_->Stat("vol/f"));
  ASSERT_OK_AND_ASSIGN(VolumeStat in_snap, fs_->Stat("snap/f"));
  EXPECT_EQ(in_snap.ino, in_vol.ino);
  EXPECT_NE(in_snap.dev, in_vol.dev);
  EXPECT_EQ(in_snap.size, 5000u);
}

// ReadEntries: "All entries but "." and ".."", each with its inode and type.
TEST_P(VolumeFsContract, ReadEntriesListsEveryNameWithItsInodeAndType) {
  ASSERT_OK(world_->MakeDir("d"));
  ASSERT_OK(world_->WriteFile("d/f", 10));
  ASSERT_OK(world_->HardLink("d/f", "d/f2"));
  ASSERT_OK(world_->MakeDir("d/sub"));
  ASSERT_OK(world_->Symlink("d/l"));
  ASSERT_OK(world_->MakeFifo("d/p"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<VolumeDir> dir, fs_->OpenDir("d"));
  ASSERT_OK_AND_ASSIGN(std::vector<VolumeDirEntry> entries, dir->ReadEntries());
  std::map<std::string, VolumeDirEntry> by_name;
  for (const VolumeDirEntry& e : entries) by_name[e.name] = e;
  ASSERT_EQ(by_name.size(), entries.size());
  std::vector<std::string> names;
  for (const auto& [name, e] : by_name) names.push_back(name);
  EXPECT_THAT(names, ElementsAre("f", "f2", "l", "p", "sub"));
  EXPECT_EQ(by_name["f"].type, EntryType::kRegular);
  EXPECT_EQ(by_name["f2"].type, EntryType::kRegular);
  EXPECT_EQ(by_name["sub"].type, EntryType::kDirectory);
  EXPECT_EQ(by_name["l"].type, EntryType::kSymlink);
  EXPECT_EQ(by_name["p"].type, EntryType::kOther);
  for (const auto& [name, e] : by_name) {
    ASSERT_OK_AND_ASSIGN(uint64_t ino, Ino("d/" + name));
    EXPECT_EQ(e.ino, ino) << name;
  }
  EXPECT_EQ(by_name["f2"].ino, by_name["f"].ino);
}

// The entry of a subvolume in its parent directory is a directory.
TEST_P(VolumeFsContract, ASubvolumesEntryIsADirectory) {
  ASSERT_OK(world_->CreateSubvolume("vol"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<VolumeDir> root, fs_->OpenDir(""));
  ASSERT_OK_AND_ASSIGN(std::vector<VolumeDirEntry> entries, root->ReadEntries());
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].name, "vol");
  EXPECT_EQ(entries[0].type, EntryType::kDirectory);
  EXPECT_EQ(entries[0].ino, kRootInode);
}

// "Every entry type and stat comes from one lstat-like look (no symlink following)".
TEST_P(VolumeFsContract, StatAndStatEntryNeverFollowASymlink) {
  ASSERT_OK(world_->MakeDir("d"));
  ASSERT_OK(world_->Symlink("d/l"));
  ASSERT_OK(world_->MakeFifo("d/p"));
  ASSERT_OK(world_->WriteFile("d/f", 4321));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<VolumeDir> dir, fs_->OpenDir("d"));
  ASSERT_OK_AND_ASSIGN(VolumeStat link, fs_->Stat("d/l"));
  EXPECT_EQ(link.type, EntryType::kSymlink);
  ASSERT_OK_AND_ASSIGN(VolumeStat link_entry, dir->StatEntry("l"));
  EXPECT_EQ(link_entry.type, EntryType::kSymlink);
  EXPECT_EQ(link_entry.ino, link.ino);
  ASSERT_OK_AND_ASSIGN(VolumeStat fifo, dir->StatEntry("p"));
  EXPECT_EQ(fifo.type, EntryType::kOther);
  ASSERT_OK_AND_ASSIGN(VolumeStat file, fs_->Stat("d/f"));
  ASSERT_OK_AND_ASSIGN(VolumeStat file_entry, dir->StatEntry("f"));
  EXPECT_EQ(file.type, EntryType::kRegular);
  EXPECT_EQ(file.size, 4321u);
  EXPECT_EQ(file_entry.ino, file.ino);
  EXPECT_EQ(file_entry.dev, file.dev);
  EXPECT_EQ(file_entry.size, file.size);
  EXPECT_EQ(file_entry.mtime_ns, file.mtime_ns);
}

// StatRegularFiles: "What StatEntry would say of the regular files among `entries`", as
// of the last commit; nothing else (a directory, a symlink, a FIFO, another directory's
// file) is in the answer. Both implementations answer for the committed files of a
// directory made together, so the full scan reads them in bulk.
TEST_P(VolumeFsContract, StatRegularFilesSaysWhatStatEntrySaysOfEachCommittedFile) {
  ASSERT_OK(world_->MakeDir("d"));
  std::vector<std::string> files;
  for (int i = 0; i < 12; ++i) {
    if (i == 6) {  // inodes among theirs that are not the directory's regular files
      ASSERT_OK(world_->MakeDir("d/sub"));
      ASSERT_OK(world_->WriteFile("d/sub/inner", 77));
      ASSERT_OK(world_->Symlink("d/l"));
      ASSERT_OK(world_->MakeFifo("d/p"));
      ASSERT_OK(world_->HardLink("d/f0", "d/f0-link"));
    }
    files.push_back(absl::StrCat("d/f", i));
    ASSERT_OK(world_->WriteFile(files.back(), 1000 + i));
  }
  ASSERT_OK(world_->Commit());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<VolumeDir> dir, fs_->OpenDir("d"));
  ASSERT_OK_AND_ASSIGN(std::vector<VolumeDirEntry> entries, dir->ReadEntries());
  ASSERT_OK_AND_ASSIGN(auto bulk, dir->StatRegularFiles(entries));
  std::vector<uint64_t> answered;
  for (const auto& [ino, st] : bulk) answered.push_back(ino);
  std::vector<uint64_t> file_inos;
  for (const std::string& name : files) {
    ASSERT_OK_AND_ASSIGN(uint64_t ino, Ino(name));
    file_inos.push_back(ino);
  }
  EXPECT_THAT(answered, ::testing::UnorderedElementsAreArray(file_inos));
  for (const VolumeDirEntry& e : entries) {
    auto it = bulk.find(e.ino);
    if (it == bulk.end()) continue;
    ASSERT_OK_AND_ASSIGN(VolumeStat one, dir->StatEntry(e.name));
    EXPECT_EQ(it->second.dev, one.dev) << e.name;
    EXPECT_EQ(it->second.ino, one.ino) << e.name;
    EXPECT_EQ(it->second.type, one.type) << e.name;
    EXPECT_EQ(it->second.size, one.size) << e.name;
    EXPECT_EQ(it->second.mtime_ns, one.mtime_ns) << e.name;
    EXPECT_EQ(it->second.ctime_ns, one.ctime_ns) << e.name;
  }
}

// A rewrite in place keeps the inode and shows the new size.
TEST_P(VolumeFsContract, ARewriteInPlaceKeepsTheInodeWithTheNewSize) {
  ASSERT_OK(world_->WriteFile("f", 1000));
  ASSERT_OK_AND_ASSIGN(VolumeStat before, fs_->Stat("f"));
  ASSERT_OK(world_->WriteFile("f", 3000));
  ASSERT_OK_AND_ASSIGN(VolumeStat after, fs_->Stat("f"));
  EXPECT_EQ(after.ino, before.ino);
  EXPECT_EQ(after.size, 3000u);
}

// "NotFound when the subvolume has no such inode"; "fails with NotFound when nothing is
// there"; errors carry the errno and name the path.
TEST_P(VolumeFsContract, MissingThingsAreNotFoundNamingThePath) {
  ASSERT_OK(world_->MakeDir("d"));
  absl::Status stat = fs_->Stat("d/missing").status();
  EXPECT_TRUE(absl::IsNotFound(stat)) << stat;
  EXPECT_THAT(ErrnoOf(stat), Optional(ENOENT));
  EXPECT_THAT(std::string(stat.message()), HasSubstr("d/missing"));
  absl::Status open = fs_->OpenDir("d/missing").status();
  EXPECT_TRUE(absl::IsNotFound(open)) << open;
  EXPECT_THAT(ErrnoOf(open), Optional(ENOENT));
  EXPECT_THAT(std::string(open.message()), HasSubstr("d/missing"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<VolumeDir> dir, fs_->OpenDir("d"));
  absl::Status entry = dir->StatEntry("missing").status();
  EXPECT_TRUE(absl::IsNotFound(entry)) << entry;
  EXPECT_THAT(ErrnoOf(entry), Optional(ENOENT));
  EXPECT_THAT(std::string(entry.message()), HasSubstr("missing"));
  absl::Status search = fs_->ChangedInodesSince("missing", 0).status();
  EXPECT_TRUE(absl::IsNotFound(search)) << search;
  EXPECT_THAT(std::string(search.message()), HasSubstr("missing"));
  absl::Status inode = fs_->InodePath("", 999999).status();
  EXPECT_TRUE(absl::IsNotFound(inode)) << inode;
}

// "OpenDir() never follows a symlink in the last component"; a file is not a directory.
TEST_P(VolumeFsContract, OpenDirRefusesASymlinkAndAFile) {
  ASSERT_OK(world_->MakeDir("target"));
  ASSERT_OK(world_->Symlink("l"));  // to "target"
  ASSERT_OK(world_->WriteFile("f", 10));
  absl::Status link = fs_->OpenDir("l").status();
  EXPECT_TRUE(absl::IsNotFound(link)) << link;
  EXPECT_THAT(ErrnoOf(link), Optional(ENOTDIR));
  absl::Status file = fs_->OpenDir("f").status();
  EXPECT_TRUE(absl::IsNotFound(file)) << file;
  EXPECT_THAT(ErrnoOf(file), Optional(ENOTDIR));
}

INSTANTIATE_TEST_SUITE_P(Impls, VolumeFsContract, ::testing::Values(VolumeImpl::kFake, VolumeImpl::kReal),
                         ImplName);

}  // namespace
}  // namespace testing
}  // namespace btrdupd
