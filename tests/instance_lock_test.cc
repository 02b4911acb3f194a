// One btrdupd per volume (daemon/instance_lock.h): a second holder is refused with the
// first one's pid, the lock goes with the process (even kill -9), and the file stays.

#include "daemon/instance_lock.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace {

using ::testing::HasSubstr;

std::string TempLockPath(absl::string_view name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name, ".", getpid(), ".lock");
}

TEST(InstanceLockTest, LockPathSitsNextToTheDatabase) {
  EXPECT_EQ(LockPathForDatabase("/mnt/v/.btrdupd/btrdupd.db"),
            "/mnt/v/.btrdupd/btrdupd.db.lock");
}

TEST(InstanceLockTest, SecondHolderInAnotherProcessIsRefusedWithThePid) {
  const std::string path = TempLockPath("second");
  absl::StatusOr<std::unique_ptr<InstanceLock>> first = InstanceLock::Acquire(path, "/mnt/v");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(InstanceLock::Holder(path), getpid());

  // flock locks belong to the open file description, so a child process opening the
  // file itself contends like another btrdupd would.
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipefd[0]);
    absl::StatusOr<std::unique_ptr<InstanceLock>> second =
        InstanceLock::Acquire(path, "/mnt/v");
    std::string msg = second.ok() ? "ACQUIRED" : std::string(second.status().ToString());
    (void)!write(pipefd[1], msg.data(), msg.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) msg.append(buf, n);
  close(pipefd[0]);
  int wstatus;
  waitpid(child, &wstatus, 0);
  EXPECT_THAT(msg, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(msg, HasSubstr(absl::StrCat("btrdupd pid ", getpid())));
  EXPECT_THAT(msg, HasSubstr("/mnt/v is already being processed"));
  EXPECT_THAT(msg, HasSubstr(path));
}

TEST(InstanceLockTest, ReleasedWhenDestroyedAndFileStays) {
  const std::string path = TempLockPath("release");
  {
    absl::StatusOr<std::unique_ptr<InstanceLock>> lock = InstanceLock::Acquire(path, "v");
    ASSERT_TRUE(lock.ok()) << lock.status();
  }
  EXPECT_EQ(InstanceLock::Holder(path), std::nullopt);
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  absl::StatusOr<std::unique_ptr<InstanceLock>> again = InstanceLock::Acquire(path, "v");
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST(InstanceLockTest, LockOfAKilledProcessIsFreeAtOnce) {
  const std::string path = TempLockPath("killed");
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipefd[0]);
    absl::StatusOr<std::unique_ptr<InstanceLock>> lock = InstanceLock::Acquire(path, "v");
    char c = lock.ok() ? 'y' : 'n';
    (void)!write(pipefd[1], &c, 1);
    pause();
    _exit(0);
  }
  close(pipefd[1]);
  char c = 0;
  ASSERT_EQ(read(pipefd[0], &c, 1), 1);
  close(pipefd[0]);
  ASSERT_EQ(c, 'y');
  EXPECT_EQ(InstanceLock::Holder(path), child);
  const absl::Status held = InstanceLock::Acquire(path, "v").status();
  EXPECT_TRUE(absl::IsFailedPrecondition(held)) << held;
  EXPECT_EQ(ErrnoOf(held), EWOULDBLOCK);

  kill(child, SIGKILL);
  int wstatus;
  waitpid(child, &wstatus, 0);
  EXPECT_EQ(InstanceLock::Holder(path), std::nullopt);
  absl::StatusOr<std::unique_ptr<InstanceLock>> lock = InstanceLock::Acquire(path, "v");
  ASSERT_TRUE(lock.ok()) << lock.status();
  EXPECT_EQ(InstanceLock::Holder(path), getpid());
}

TEST(InstanceLockTest, SameProcessSharesTheHoldUntilTheLastHolderGoes) {
  const std::string path = TempLockPath("shared");
  absl::StatusOr<std::unique_ptr<InstanceLock>> daemon = InstanceLock::Acquire(path, "v");
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  absl::StatusOr<std::unique_ptr<InstanceLock>> session = InstanceLock::Acquire(path, "v");
  ASSERT_TRUE(session.ok()) << session.status();
  daemon->reset();
  EXPECT_EQ(InstanceLock::Holder(path), getpid());  // still held by `session`
  session->reset();
  EXPECT_EQ(InstanceLock::Holder(path), std::nullopt);
}

TEST(InstanceLockTest, MissingDirectoryIsAClearError) {
  absl::StatusOr<std::unique_ptr<InstanceLock>> lock =
      InstanceLock::Acquire("/nonexistent-btrdupd-dir/x.lock", "v");
  EXPECT_TRUE(absl::IsNotFound(lock.status())) << lock.status();
  EXPECT_EQ(ErrnoOf(lock.status()), ENOENT);
  EXPECT_THAT(std::string(lock.status().message()), HasSubstr("/nonexistent-btrdupd-dir"));
}

}  // namespace
}  // namespace btrdupd
