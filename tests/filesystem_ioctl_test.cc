// Filesystem identity and checks on a real loopback btrfs.

#include "ioctl/filesystem.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>

#include "absl/strings/str_replace.h"
#include "ioctl/errno_status.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::RunChecked;
using ::btrdupd::testing::WriteFile;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

class FilesystemIoctlTest : public btrdupd::testing::BtrfsTest {};

TEST_F(FilesystemIoctlTest, LoopbackMountIsBtrfs) {
  EXPECT_OK(IsBtrfs(mount_path()));
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, OpenPath(mount_path(), O_RDONLY | O_DIRECTORY));
  EXPECT_OK(IsBtrfs(fd.get()));
}

TEST(FilesystemOutsideBtrfsTest, ProcIsFailedPreconditionNamingPathAndFilesystem) {
  absl::Status status = IsBtrfs("/proc");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("/proc is on proc"));
}

TEST(FilesystemOutsideBtrfsTest, SysfsIsFailedPrecondition) {
  absl::Status status = IsBtrfs("/sys");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("sysfs"));
}

TEST(FilesystemOutsideBtrfsTest, MissingPathIsNotFound) {
  absl::Status status = IsBtrfs("/nonexistent/btrdupd/path");
  EXPECT_TRUE(absl::IsNotFound(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("/nonexistent/btrdupd/path"));
}

TEST_F(FilesystemIoctlTest, FsidIsTheFilesystemUuidAndSameInEverySubvolume) {
  ASSERT_OK(RunChecked({"btrfs", "subvolume", "create", Path("vol")}));
  ASSERT_OK(WriteFile(Path("vol/file"), "x"));
  ASSERT_OK_AND_ASSIGN(std::string top, Fsid(mount_path()));
  ASSERT_OK_AND_ASSIGN(std::string vol, Fsid(Path("vol")));
  ASSERT_OK_AND_ASSIGN(std::string file, Fsid(Path("vol/file")));
  EXPECT_THAT(top, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(top, vol);
  EXPECT_EQ(top, file);
  // Subvolumes have their own st_dev; the fsid is what ties them together.
  struct stat top_st;
  struct stat vol_st;
  ASSERT_EQ(stat(mount_path().c_str(), &top_st), 0);
  ASSERT_EQ(stat(Path("vol").c_str(), &vol_st), 0);
  EXPECT_NE(top_st.st_dev, vol_st.st_dev);

  ASSERT_OK_AND_ASSIGN(std::string uuid,
                       RunChecked({"findmnt", "-n", "-o", "UUID", "--mountpoint", mount_path()}));
  EXPECT_EQ(absl::StrReplaceAll(uuid, {{"-", ""}, {"\n", ""}}), top);
}

TEST_F(FilesystemIoctlTest, FsInfoReportsBlockSizes) {
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, OpenPath(mount_path(), O_RDONLY | O_DIRECTORY));
  ASSERT_OK_AND_ASSIGN(BtrfsFsInfo info, GetFsInfo(fd.get()));
  EXPECT_EQ(info.sector_size, 4096u);
  EXPECT_GE(info.node_size, 4096u);
  EXPECT_EQ(info.num_devices, 1u);
  EXPECT_GT(info.generation, 0u);
}

TEST_F(FilesystemIoctlTest, FsidOfNonBtrfsDescriptorIsAnError) {
  ASSERT_OK_AND_ASSIGN(UniqueFd proc, OpenPath("/proc", O_RDONLY | O_DIRECTORY));
  absl::StatusOr<std::string> fsid = Fsid(proc.get());
  EXPECT_TRUE(absl::IsFailedPrecondition(fsid.status())) << fsid.status();
  EXPECT_EQ(ErrnoOf(fsid.status()), ENOTTY);
  EXPECT_THAT(std::string(fsid.status().message()), HasSubstr("/proc"));
}

TEST_F(FilesystemIoctlTest, SyncFilesystemCommitsTheRunningTransaction) {
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, OpenPath(mount_path(), O_RDONLY | O_DIRECTORY));
  ASSERT_OK(SyncFilesystem(fd.get()));
  ASSERT_OK(WriteFile(Path("f"), "data"));
  ASSERT_OK_AND_ASSIGN(BtrfsFsInfo running, GetFsInfo(fd.get()));
  EXPECT_OK(SyncFilesystem(fd.get()));
  // The change is committed: the next change opens a new transaction.
  ASSERT_OK(WriteFile(Path("g"), "more"));
  ASSERT_OK_AND_ASSIGN(BtrfsFsInfo next, GetFsInfo(fd.get()));
  EXPECT_GT(next.generation, running.generation);
}

TEST_F(FilesystemIoctlTest, CommitTransactionCommitsTheRunningTransaction) {
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, OpenPath(mount_path(), O_RDONLY | O_DIRECTORY));
  ASSERT_OK(WriteFile(Path("f"), "data"));
  ASSERT_OK_AND_ASSIGN(BtrfsFsInfo running, GetFsInfo(fd.get()));
  ASSERT_OK_AND_ASSIGN(uint64_t committed, CommitTransaction(fd.get()));
  EXPECT_GE(committed, running.generation);
  // The change is committed: the next change opens a new transaction.
  ASSERT_OK(WriteFile(Path("g"), "more"));
  ASSERT_OK_AND_ASSIGN(BtrfsFsInfo next, GetFsInfo(fd.get()));
  EXPECT_GT(next.generation, committed);
}

TEST(FilesystemOutsideBtrfsTest, SyncOfBadDescriptorIsInvalidArgument) {
  absl::Status status = SyncFilesystem(-1);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("Bad file descriptor"));
}

TEST_F(FilesystemIoctlTest, MountPointIsTheMountRootOnly) {
  ASSERT_OK(RunChecked({"btrfs", "subvolume", "create", Path("vol")}));
  ASSERT_EQ(mkdir(Path("plain").c_str(), 0755), 0);
  ASSERT_OK_AND_ASSIGN(bool root, IsMountPoint(mount_path()));
  ASSERT_OK_AND_ASSIGN(bool vol, IsMountPoint(Path("vol")));
  ASSERT_OK_AND_ASSIGN(bool plain, IsMountPoint(Path("plain")));
  EXPECT_TRUE(root);
  EXPECT_FALSE(vol);  // a subvolume is not a mount, despite its own st_dev
  EXPECT_FALSE(plain);
}

}  // namespace
}  // namespace btrdupd
