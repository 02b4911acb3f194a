// errno -> absl::Status mapping, and UniqueFd ownership.

#include "ioctl/errno_status.h"

#include <errno.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <utility>

#include "ioctl/unique_fd.h"

namespace btrdupd {
namespace {

using ::testing::HasSubstr;

TEST(ErrnoToStatusTest, CodesFollowWhatTheCallerCanDo) {
  EXPECT_TRUE(absl::IsNotFound(ErrnoToStatus(ENOENT, "x")));
  EXPECT_TRUE(absl::IsPermissionDenied(ErrnoToStatus(EACCES, "x")));
  EXPECT_TRUE(absl::IsPermissionDenied(ErrnoToStatus(EPERM, "x")));
  EXPECT_TRUE(absl::IsInvalidArgument(ErrnoToStatus(EINVAL, "x")));
  EXPECT_TRUE(absl::IsInvalidArgument(ErrnoToStatus(EXDEV, "x")));
  EXPECT_TRUE(absl::IsFailedPrecondition(ErrnoToStatus(EROFS, "x")));
  EXPECT_TRUE(absl::IsFailedPrecondition(ErrnoToStatus(ETXTBSY, "x")));
  EXPECT_TRUE(absl::IsUnavailable(ErrnoToStatus(EAGAIN, "x")));
  EXPECT_TRUE(absl::IsResourceExhausted(ErrnoToStatus(ENOSPC, "x")));
  EXPECT_TRUE(absl::IsUnimplemented(ErrnoToStatus(EOPNOTSUPP, "x")));
  EXPECT_TRUE(absl::IsDataLoss(ErrnoToStatus(EIO, "x")));
}

TEST(ErrnoToStatusTest, MessageHasContextAndErrnoText) {
  absl::Status status = ErrnoToStatus(ENOENT, "open /mnt/a/b");
  EXPECT_EQ(status.message(), "open /mnt/a/b: No such file or directory");
}

TEST(ErrnoToStatusTest, StatusCarriesItsErrno) {
  // EROFS and ETXTBSY share a code; the errno tells them apart.
  EXPECT_EQ(ErrnoOf(ErrnoToStatus(EROFS, "x")), EROFS);
  EXPECT_EQ(ErrnoOf(ErrnoToStatus(ETXTBSY, "x")), ETXTBSY);
  EXPECT_EQ(ErrnoOf(ErrnoToStatusWithMessage(EAGAIN, "send running")), EAGAIN);
  EXPECT_EQ(ErrnoOf(WithErrno(absl::InternalError("x"), EIO)), EIO);
}

TEST(ErrnoToStatusTest, TextAloneCarriesNoErrno) {
  EXPECT_EQ(ErrnoOf(absl::FailedPreconditionError("x: Read-only file system")), std::nullopt);
  EXPECT_EQ(ErrnoOf(absl::OkStatus()), std::nullopt);
  EXPECT_EQ(ErrnoOf(WithErrno(absl::OkStatus(), EIO)), std::nullopt);
}

TEST(UniqueFdTest, ClosesOnDestructionAndMovesOwnership) {
  int raw = -1;
  {
    absl::StatusOr<UniqueFd> fd = OpenPath("/dev/null", O_RDONLY);
    ASSERT_TRUE(fd.ok()) << fd.status();
    raw = fd->get();
    EXPECT_TRUE(fd->valid());
    UniqueFd moved = std::move(*fd);
    EXPECT_FALSE(fd->valid());
    EXPECT_EQ(moved.get(), raw);
    EXPECT_NE(fcntl(raw, F_GETFD), -1);
    EXPECT_TRUE(fcntl(raw, F_GETFD) & FD_CLOEXEC);
  }
  EXPECT_EQ(fcntl(raw, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST(UniqueFdTest, ReleaseGivesUpOwnership) {
  absl::StatusOr<UniqueFd> fd = OpenPath("/dev/null", O_RDONLY);
  ASSERT_TRUE(fd.ok());
  const int raw = fd->release();
  EXPECT_FALSE(fd->valid());
  EXPECT_NE(fcntl(raw, F_GETFD), -1);
  close(raw);
}

TEST(UniqueFdTest, OpenErrorsNameThePath) {
  absl::StatusOr<UniqueFd> missing = OpenPath("/nonexistent/file", O_RDONLY);
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/nonexistent/file"));

  absl::StatusOr<UniqueFd> dev = OpenPath("/dev", O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(dev.ok());
  absl::StatusOr<UniqueFd> relative = OpenAt(dev->get(), "no-such-entry", O_RDONLY);
  EXPECT_TRUE(absl::IsNotFound(relative.status()));
  EXPECT_THAT(std::string(relative.status().message()), HasSubstr("no-such-entry in /dev"));
  absl::StatusOr<UniqueFd> null = OpenAt(dev->get(), "null", O_RDONLY);
  EXPECT_TRUE(null.ok()) << null.status();
}

TEST(UniqueFdTest, DescribeFdNamesTheFile) {
  absl::StatusOr<UniqueFd> fd = OpenPath("/dev/null", O_RDONLY);
  ASSERT_TRUE(fd.ok());
  EXPECT_THAT(DescribeFd(fd->get()), HasSubstr("/dev/null (fd "));
  EXPECT_EQ(DescribeFd(-1), "fd -1");
}

TEST(UniqueFdTest, DescribeFdLeavesErrnoAlone) {
  errno = EXDEV;
  DescribeFd(-1);
  EXPECT_EQ(errno, EXDEV);
}

}  // namespace
}  // namespace btrdupd
