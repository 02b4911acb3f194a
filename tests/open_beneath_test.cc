// ioctl/open_beneath.h on a fresh loopback btrfs: the openat2 resolution and the
// component walk older kernels get, held to the same contract (one parameterized suite).

#include "ioctl/open_beneath.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using testing::RunShellChecked;
using testing::WriteFile;

class OpenBeneathTest : public testing::BtrfsTest,
                        public ::testing::WithParamInterface<ResolveMethod> {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_OK_AND_ASSIGN(root_, OpenPath(mount_path(), O_RDONLY | O_DIRECTORY));
    ASSERT_OK(RunShellChecked(absl::StrCat("mkdir -p '", Path("d/e"), "' '", Path("outside"),
                                           "'")));
    ASSERT_OK(WriteFile(Path("d/e/f"), "data"));
    ASSERT_OK(WriteFile(Path("outside/secret"), "secret"));
  }
  void TearDown() override {
    root_.reset();
    BtrfsTest::TearDown();
  }
  absl::StatusOr<UniqueFd> Open(const std::string& relative, int flags = O_PATH) {
    return OpenBeneath(root_.get(), relative, flags, GetParam());
  }
  uint64_t InodeOf(const std::string& path) {
    struct stat st;
    EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
    return st.st_ino;
  }
  uint64_t InodeOf(int fd) {
    struct stat st;
    EXPECT_EQ(fstat(fd, &st), 0);
    return st.st_ino;
  }

  UniqueFd root_;
};

TEST_P(OpenBeneathTest, OpensAFileBelowTheDirectory) {
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, Open("d/e/f"));
  EXPECT_EQ(InodeOf(fd.get()), InodeOf(Path("d/e/f")));
  ASSERT_OK_AND_ASSIGN(UniqueFd self, Open(""));
  EXPECT_EQ(InodeOf(self.get()), InodeOf(mount_path()));
}

TEST_P(OpenBeneathTest, ASymlinkInAnyComponentIsNotFollowed) {
  ASSERT_EQ(symlink(Path("outside").c_str(), Path("d/link").c_str()), 0);
  ASSERT_EQ(symlink("secret", Path("outside/rel").c_str()), 0);
  ASSERT_EQ(symlink(Path("outside/secret").c_str(), Path("d/e/flink").c_str()), 0);
  EXPECT_TRUE(absl::IsAborted(Open("d/link/secret").status()));
  EXPECT_TRUE(absl::IsAborted(Open("d/e/flink").status()));
  EXPECT_TRUE(absl::IsAborted(Open("d/e/flink", O_RDONLY).status()));
  EXPECT_TRUE(absl::IsAborted(Open("outside/rel", O_RDONLY).status()));
}

TEST_P(OpenBeneathTest, MalformedPathsAreRefusedBeforeAnyLookup) {
  for (const char* bad : {"..", "d/../outside/secret", "/etc", "d//e/f", "d/./e", "d/e/"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(Open(bad).status())) << bad;
  }
}

TEST_P(OpenBeneathTest, MissingComponentIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(Open("d/nope/f").status()));
  EXPECT_TRUE(absl::IsNotFound(Open("d/e/nope").status()));
}

TEST_P(OpenBeneathTest, AMountPointIsNotCrossed) {
  ASSERT_EQ(mount("none", Path("d/e").c_str(), "tmpfs", 0, "size=1m"), 0);
  absl::Cleanup unmount = [&] { umount2(Path("d/e").c_str(), MNT_DETACH); };
  ASSERT_OK(WriteFile(Path("d/e/on_tmpfs"), "x"));
  EXPECT_TRUE(absl::IsAborted(Open("d/e/on_tmpfs").status()));
  EXPECT_TRUE(absl::IsAborted(Open("d/e", O_RDONLY | O_DIRECTORY).status()));
}

TEST_P(OpenBeneathTest, AFifoIsLookedAtWithoutBeingOpened) {
  ASSERT_EQ(mkfifo(Path("d/fifo").c_str(), 0600), 0);
  // O_PATH returns at once (a FIFO opened for reading would wait for a writer).
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, Open("d/fifo"));
  struct stat st;
  ASSERT_EQ(fstat(fd.get(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST_P(OpenBeneathTest, ReopenGivesTheSameInodeAfterItsNameMoved) {
  ASSERT_OK_AND_ASSIGN(UniqueFd path_fd, Open("d/e/f"));
  const uint64_t ino = InodeOf(path_fd.get());
  ASSERT_EQ(rename(Path("d/e").c_str(), Path("moved").c_str()), 0);
  ASSERT_EQ(symlink(Path("outside").c_str(), Path("d/e").c_str()), 0);
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, ReopenFd(path_fd.get(), O_RDONLY));
  EXPECT_EQ(InodeOf(fd.get()), ino);
  char buf[8];
  EXPECT_EQ(read(fd.get(), buf, sizeof(buf)), 4);
}

INSTANTIATE_TEST_SUITE_P(BothMethods, OpenBeneathTest,
                         ::testing::Values(ResolveMethod::kOpenat2, ResolveMethod::kWalk),
                         [](const ::testing::TestParamInfo<ResolveMethod>& info) {
                           return info.param == ResolveMethod::kWalk ? "Walk" : "Openat2";
                         });

TEST(OpenBeneathKernelTest, RunningKernelHasOpenat2) {
  // This machine's kernel is >= 5.6; the walk is still tested above by forcing it.
  EXPECT_TRUE(Openat2Supported());
}

}  // namespace
}  // namespace btrdupd
