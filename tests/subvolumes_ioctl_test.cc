// Subvolume listing and the read-only flag (libbtrfsutil) on a real
// loopback btrfs.

#include "ioctl/subvolumes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <string>
#include <vector>

#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::RunChecked;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr char kUuidPattern[] =
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

class SubvolumesIoctlTest : public btrdupd::testing::BtrfsTest {
 protected:
  absl::Status Btrfs(std::vector<std::string> args) {
    args.insert(args.begin(), "btrfs");
    return RunChecked(args).status();
  }

  static const SubvolumeInfo* Find(const std::vector<SubvolumeInfo>& list,
                                   const std::string& path) {
    for (const SubvolumeInfo& info : list) {
      if (info.path == path) return &info;
    }
    return nullptr;
  }

  static std::vector<std::string> Paths(const std::vector<SubvolumeInfo>& list) {
    std::vector<std::string> paths;
    for (const SubvolumeInfo& info : list) paths.push_back(info.path);
    return paths;
  }
};

TEST_F(SubvolumesIoctlTest, ListsTheMountedSubvolumeAndEverythingBelow) {
  ASSERT_OK(Btrfs({"subvolume", "create", Path("vol")}));
  ASSERT_OK(Btrfs({"subvolume", "create", Path("vol/inner")}));
  ASSERT_EQ(mkdir(Path("dir").c_str(), 0755), 0);
  ASSERT_OK(Btrfs({"subvolume", "create", Path("dir/deep")}));

  ASSERT_OK_AND_ASSIGN(std::vector<SubvolumeInfo> list, ListSubvolumes(mount_path()));
  EXPECT_THAT(Paths(list), ElementsAre("", "dir/deep", "vol", "vol/inner"));
  const SubvolumeInfo* top = Find(list, "");
  ASSERT_NE(top, nullptr);
  EXPECT_EQ(top->id, kTopLevelSubvolumeId);
  EXPECT_EQ(top->parent_id, 0u);
  EXPECT_THAT(top->uuid, MatchesRegex(kUuidPattern));
  const SubvolumeInfo* vol = Find(list, "vol");
  const SubvolumeInfo* inner = Find(list, "vol/inner");
  ASSERT_NE(vol, nullptr);
  ASSERT_NE(inner, nullptr);
  EXPECT_GT(vol->id, kTopLevelSubvolumeId);
  EXPECT_EQ(vol->parent_id, kTopLevelSubvolumeId);
  EXPECT_EQ(inner->parent_id, vol->id);
  EXPECT_THAT(vol->uuid, MatchesRegex(kUuidPattern));
  EXPECT_NE(vol->uuid, inner->uuid);
  EXPECT_EQ(vol->parent_uuid, "");
  EXPECT_EQ(vol->received_uuid, "");
  EXPECT_FALSE(vol->read_only);
  EXPECT_GT(vol->generation, 0u);
}

TEST_F(SubvolumesIoctlTest, PathsAreRelativeToTheGivenSubvolume) {
  ASSERT_OK(Btrfs({"subvolume", "create", Path("vol")}));
  ASSERT_OK(Btrfs({"subvolume", "create", Path("vol/inner")}));
  ASSERT_OK_AND_ASSIGN(std::vector<SubvolumeInfo> list, ListSubvolumes(Path("vol")));
  EXPECT_THAT(Paths(list), ElementsAre("", "inner"));
}

TEST_F(SubvolumesIoctlTest, SnapshotNamesItsSourceAsParent) {
  ASSERT_OK(Btrfs({"subvolume", "create", Path("vol")}));
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("vol"), Path("snap")}));
  ASSERT_OK_AND_ASSIGN(std::vector<SubvolumeInfo> list, ListSubvolumes(mount_path()));
  const SubvolumeInfo* vol = Find(list, "vol");
  const SubvolumeInfo* snap = Find(list, "snap");
  ASSERT_NE(vol, nullptr);
  ASSERT_NE(snap, nullptr);
  EXPECT_EQ(snap->parent_uuid, vol->uuid);
  EXPECT_NE(snap->uuid, vol->uuid);
  EXPECT_TRUE(snap->read_only);
  EXPECT_EQ(snap->received_uuid, "");
  // The same uuid btrfs-progs prints.
  ASSERT_OK_AND_ASSIGN(std::string show, RunChecked({"btrfs", "subvolume", "show", Path("snap")}));
  EXPECT_THAT(show, HasSubstr(snap->uuid));
  EXPECT_THAT(show, HasSubstr(vol->uuid));
}

TEST_F(SubvolumesIoctlTest, ReadOnlyFlagTogglesAndRestores) {
  ASSERT_OK(Btrfs({"subvolume", "create", Path("vol")}));
  ASSERT_OK(Btrfs({"subvolume", "snapshot", "-r", Path("vol"), Path("snap")}));
  ASSERT_OK_AND_ASSIGN(bool before, GetReadOnly(Path("snap")));
  EXPECT_TRUE(before);

  ASSERT_OK(SetReadOnly(Path("snap"), false));
  ASSERT_OK_AND_ASSIGN(bool cleared, GetReadOnly(Path("snap")));
  EXPECT_FALSE(cleared);
  ASSERT_OK(RunChecked({"touch", Path("snap/now-writable")}));

  ASSERT_OK(SetReadOnly(Path("snap"), true));
  ASSERT_OK_AND_ASSIGN(bool restored, GetReadOnly(Path("snap")));
  EXPECT_TRUE(restored);
  ASSERT_OK_AND_ASSIGN(SubvolumeInfo info, GetSubvolumeInfo(Path("snap")));
  EXPECT_TRUE(info.read_only);
  const int fd = open(Path("snap/refused").c_str(), O_WRONLY | O_CREAT, 0644);
  const int err = errno;
  if (fd >= 0) close(fd);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(err, EROFS);
}

TEST_F(SubvolumesIoctlTest, GetSubvolumeInfoDescribesTheContainingSubvolume) {
  ASSERT_OK(Btrfs({"subvolume", "create", Path("vol")}));
  ASSERT_EQ(mkdir(Path("vol/plain").c_str(), 0755), 0);
  ASSERT_OK_AND_ASSIGN(SubvolumeInfo from_dir, GetSubvolumeInfo(Path("vol/plain")));
  ASSERT_OK_AND_ASSIGN(SubvolumeInfo from_root, GetSubvolumeInfo(Path("vol")));
  EXPECT_EQ(from_dir.id, from_root.id);
  EXPECT_EQ(from_dir.uuid, from_root.uuid);
}

TEST_F(SubvolumesIoctlTest, IsSubvolumeTellsSubvolumesFromDirectories) {
  ASSERT_OK(Btrfs({"subvolume", "create", Path("vol")}));
  ASSERT_EQ(mkdir(Path("plain").c_str(), 0755), 0);
  ASSERT_OK_AND_ASSIGN(bool top, IsSubvolume(mount_path()));
  ASSERT_OK_AND_ASSIGN(bool vol, IsSubvolume(Path("vol")));
  ASSERT_OK_AND_ASSIGN(bool plain, IsSubvolume(Path("plain")));
  EXPECT_TRUE(top);
  EXPECT_TRUE(vol);
  EXPECT_FALSE(plain);
}

TEST_F(SubvolumesIoctlTest, ListingFromAPlainDirectoryIsFailedPrecondition) {
  ASSERT_EQ(mkdir(Path("plain").c_str(), 0755), 0);
  absl::StatusOr<std::vector<SubvolumeInfo>> list = ListSubvolumes(Path("plain"));
  EXPECT_TRUE(absl::IsFailedPrecondition(list.status())) << list.status();
  EXPECT_THAT(std::string(list.status().message()), HasSubstr(Path("plain")));
}

TEST_F(SubvolumesIoctlTest, MissingPathIsNotFound) {
  absl::StatusOr<bool> ro = GetReadOnly(Path("missing"));
  EXPECT_TRUE(absl::IsNotFound(ro.status())) << ro.status();
  EXPECT_THAT(std::string(ro.status().message()), HasSubstr(Path("missing")));
  absl::StatusOr<SubvolumeInfo> info = GetSubvolumeInfo(Path("missing"));
  EXPECT_TRUE(absl::IsNotFound(info.status())) << info.status();
}

TEST(SubvolumesOutsideBtrfsTest, NonBtrfsPathIsFailedPrecondition) {
  absl::StatusOr<bool> is_subvolume = IsSubvolume("/proc");
  EXPECT_TRUE(absl::IsFailedPrecondition(is_subvolume.status())) << is_subvolume.status();
  absl::StatusOr<std::vector<SubvolumeInfo>> list = ListSubvolumes("/proc");
  EXPECT_TRUE(absl::IsFailedPrecondition(list.status())) << list.status();
}

}  // namespace
}  // namespace btrdupd
