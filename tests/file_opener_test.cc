// daemon/file_opener.h on a fresh loopback btrfs: a file is opened only if it is still
// the one the index recorded (subvolume, inode, regular), beneath the volume, through
// no link; every other case answers Aborted (back to the scanner) or NotFound.

#include "daemon/file_opener.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "ioctl/subvolumes.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/file_refs.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using testing::RunShellChecked;
using testing::WriteFile;

class FileOpenerTest : public testing::BtrfsTest,
                       public ::testing::WithParamInterface<ResolveMethod> {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    FileOpener::Options options;
    options.method = GetParam();
    ASSERT_OK_AND_ASSIGN(opener_, FileOpener::Open(mount_path(), options));
    ASSERT_OK(RunShellChecked(absl::StrCat("mkdir -p '", Path("dir"), "' && btrfs -q subvolume create '",
                                           Path("sv"), "'")));
    ASSERT_OK(WriteFile(Path("dir/a"), "user data"));
    ASSERT_OK(WriteFile(Path("sv/b"), "in a subvolume"));
  }
  void TearDown() override {
    opener_.reset();
    BtrfsTest::TearDown();
  }
  FileRef Ref(const std::string& name) { return testing::RefFor(mount_path(), name); }

  std::unique_ptr<FileOpener> opener_;
};

TEST_P(FileOpenerTest, OpensTheIndexedFileForReading) {
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, opener_->OpenForRead(Ref("dir/a")));
  char buf[32];
  EXPECT_EQ(read(fd.get(), buf, sizeof(buf)), 9);
  ASSERT_OK_AND_ASSIGN(UniqueFd in_sv, opener_->OpenForRead(Ref("sv/b")));
}

TEST_P(FileOpenerTest, AHardLinkToAnotherFileInItsPlaceIsNotOpened) {
  ASSERT_OK(WriteFile(Path("root_only"), "secret"));
  ASSERT_EQ(chmod(Path("root_only").c_str(), 0600), 0);
  const FileRef indexed = Ref("dir/a");
  ASSERT_EQ(unlink(Path("dir/a").c_str()), 0);
  ASSERT_EQ(link(Path("root_only").c_str(), Path("dir/a").c_str()), 0);
  EXPECT_TRUE(absl::IsAborted(opener_->OpenForRead(indexed).status()));
  EXPECT_TRUE(absl::IsAborted(opener_->OpenPath(indexed).status()));
}

TEST_P(FileOpenerTest, ADirectorySwappedForASymlinkIsNotFollowed) {
  const FileRef indexed = Ref("dir/a");
  ASSERT_OK(RunShellChecked(absl::StrCat("mkdir '", Path("elsewhere"), "' && echo x > '",
                                         Path("elsewhere/a"), "'")));
  ASSERT_EQ(rename(Path("dir").c_str(), Path("dir.moved").c_str()), 0);
  ASSERT_EQ(symlink(Path("elsewhere").c_str(), Path("dir").c_str()), 0);
  EXPECT_TRUE(absl::IsAborted(opener_->OpenForRead(indexed).status()));
}

TEST_P(FileOpenerTest, AFifoOrDeviceInAFilesPlaceIsNeverOpened) {
  const FileRef indexed = Ref("dir/a");
  ASSERT_EQ(unlink(Path("dir/a").c_str()), 0);
  ASSERT_EQ(mkfifo(Path("dir/a").c_str(), 0666), 0);
  FileRef fifo = indexed;
  fifo.ino = 0;  // even for a ref that names no inode: not a regular file
  EXPECT_TRUE(absl::IsAborted(opener_->OpenForRead(fifo).status()));  // returns: no block
  ASSERT_EQ(unlink(Path("dir/a").c_str()), 0);
  ASSERT_EQ(mknod(Path("dir/a").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);  // /dev/null
  EXPECT_TRUE(absl::IsAborted(opener_->OpenForRead(fifo).status()));
}

TEST_P(FileOpenerTest, AFileOfAnotherSubvolumeIsNotTakenForIt) {
  FileRef wrong = Ref("sv/b");
  wrong.subvol_id = kTopLevelSubvolumeId;  // the index says top level, path inside sv
  wrong.subvol_path = "";
  EXPECT_TRUE(absl::IsAborted(opener_->OpenForRead(wrong).status()));
  FileRef other = Ref("sv/b");
  other.subvol_id = 999;
  EXPECT_TRUE(absl::IsAborted(opener_->OpenForRead(other).status()));
}

TEST_P(FileOpenerTest, ASubvolumeIsCheckedByItsId) {
  SubvolumeRef sv = testing::SubvolRefFor(mount_path(), "sv");
  ASSERT_OK(opener_->OpenSubvolume(sv).status());
  ASSERT_OK(RunShellChecked(absl::StrCat("mv '", Path("sv"), "' '", Path("sv.old"),
                                         "' && btrfs -q subvolume create '", Path("sv"), "'")));
  EXPECT_TRUE(absl::IsAborted(opener_->OpenSubvolume(sv).status()));
  SubvolumeRef plain_dir;
  plain_dir.id = sv.id;
  plain_dir.path = "dir";
  EXPECT_TRUE(absl::IsAborted(opener_->OpenSubvolume(plain_dir).status()));
}

// A subvolume root kept from an earlier open (file_opener.h) is that subvolume's: after
// the subvolume is moved away and another one created at its path, a ref of the old one
// opens the old one's file (or is refused once the root is checked anew), never the new
// subvolume's file with the same inode number; a ref of the new one opens the new one.
TEST_P(FileOpenerTest, AKeptSubvolumeRootNeverLeadsIntoAnotherSubvolume) {
  const FileRef old_ref = Ref("sv/b");
  std::optional<FileOpener::RootKeeper> keep(opener_->KeepRoots());
  ASSERT_OK(opener_->OpenForRead(old_ref).status());  // keeps the root of sv
  ASSERT_OK(RunShellChecked(absl::StrCat("mv '", Path("sv"), "' '", Path("sv.old"),
                                         "' && btrfs -q subvolume create '", Path("sv"), "'")));
  ASSERT_OK(WriteFile(Path("sv/b"), "the new subvolume"));
  const FileRef new_ref = Ref("sv/b");
  ASSERT_NE(new_ref.subvol_id, old_ref.subvol_id);
  ASSERT_EQ(new_ref.ino, old_ref.ino);  // both the first file of their subvolume
  auto content = [](int fd) {
    char buf[64];
    const ssize_t n = pread(fd, buf, sizeof(buf), 0);
    return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
  };
  for (int round = 0; round < 2; ++round) {
    absl::StatusOr<UniqueFd> old_fd = opener_->OpenForRead(old_ref);
    if (old_fd.ok()) {
      EXPECT_EQ(content(old_fd->get()), "in a subvolume") << round;
    } else {
      EXPECT_TRUE(absl::IsAborted(old_fd.status())) << old_fd.status();
    }
    ASSERT_OK_AND_ASSIGN(UniqueFd new_fd, opener_->OpenForRead(new_ref));
    EXPECT_EQ(content(new_fd.get()), "the new subvolume") << round;
    keep.reset();  // the second round checks every root anew: none is kept
  }
  EXPECT_TRUE(absl::IsAborted(opener_->OpenForRead(old_ref).status()));
}

// Under a guard a file opened for reading is kept (file_opener.h): the next open of the
// same ref is that checked inode, even after another file was renamed into its path,
// and never the file put in its place; without a guard the path is checked anew.
TEST_P(FileOpenerTest, AKeptFileIsTheCheckedInodeNotAFileRenamedIntoItsPlace) {
  const FileRef indexed = Ref("dir/a");
  ASSERT_OK(WriteFile(Path("other"), "root only"));
  ASSERT_EQ(chmod(Path("other").c_str(), 0600), 0);
  auto content = [](int fd) {
    char buf[64];
    const ssize_t n = pread(fd, buf, sizeof(buf), 0);
    return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
  };
  {
    FileOpener::RootKeeper keep = opener_->KeepRoots();
    ASSERT_OK_AND_ASSIGN(UniqueFd first, opener_->OpenForRead(indexed));
    ASSERT_EQ(rename(Path("other").c_str(), Path("dir/a").c_str()), 0);
    ASSERT_OK_AND_ASSIGN(UniqueFd again, opener_->OpenForRead(indexed));
    EXPECT_NE(again.get(), first.get());
    EXPECT_EQ(content(again.get()), "user data");
    struct stat a, b;
    ASSERT_EQ(fstat(first.get(), &a), 0);
    ASSERT_EQ(fstat(again.get(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino);
  }
  EXPECT_TRUE(absl::IsAborted(opener_->OpenForRead(indexed).status()));
}

TEST_P(FileOpenerTest, PathsWithDotDotOrEmptyComponentsFromTheIndexAreRefused) {
  FileRef ref = Ref("dir/a");
  for (const char* bad : {"dir/../dir/a", "dir//a", "/dir/a", "../x"}) {
    ref.path = bad;
    EXPECT_TRUE(absl::IsInvalidArgument(opener_->OpenForRead(ref).status())) << bad;
  }
  SubvolumeRef sub;
  sub.id = kTopLevelSubvolumeId;
  sub.path = "..";
  EXPECT_TRUE(absl::IsInvalidArgument(opener_->OpenSubvolume(sub).status()));
}

TEST_P(FileOpenerTest, VanishedFileIsNotFound) {
  const FileRef indexed = Ref("dir/a");
  ASSERT_EQ(unlink(Path("dir/a").c_str()), 0);
  EXPECT_TRUE(absl::IsNotFound(opener_->OpenForRead(indexed).status()));
}

INSTANTIATE_TEST_SUITE_P(BothMethods, FileOpenerTest,
                         ::testing::Values(ResolveMethod::kOpenat2, ResolveMethod::kWalk),
                         [](const ::testing::TestParamInfo<ResolveMethod>& info) {
                           return info.param == ResolveMethod::kWalk ? "Walk" : "Openat2";
                         });

}  // namespace
}  // namespace btrdupd
