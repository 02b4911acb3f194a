// FaultsTest: the fixture of the fault tests (tests/faults_test.cc,
// tests/full_disk_test.cc): loopback btrfs volumes with a short stability wait, the
// built `btrdupd --daemon` as a child process (tests/testing/daemon_process.h) watched
// through its status socket and log, and helpers to fill a filesystem to ENOSPC and to
// tell whether two files share their extents.
//
// Time: every daemon here runs with --test-time-scale=60 (one real second is one minute
// for the daemon: daemon/scaled_clock.h) and initial_wait_minutes=1, so stability waits,
// change checks and retry backoff take seconds. Nothing asserts a duration.

#ifndef BTRDUPD_TESTS_FAULTS_FIXTURE_H_
#define BTRDUPD_TESTS_FAULTS_FIXTURE_H_

#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/status_json.h"
#include "daemon/status_server.h"
#include "daemon/volume_name.h"
#include "ioctl/fiemap.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/command.h"
#include "tests/testing/daemon_process.h"
#include "tests/testing/daemon_status.h"
#include "tests/testing/files.h"
#include "tests/testing/loop_btrfs.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {

class FaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Short paths: a Unix socket path holds at most 107 bytes.
    ASSERT_OK_AND_ASSIGN(dir_, testing::DaemonTestDir::Create());
    tmp_ = dir_->path();
    socket_dir_ = dir_->socket_dir();
  }

  void TearDown() override {
    children_.clear();  // kill and reap before unmounting
    volumes_.clear();
    dir_.reset();  // after the children and volumes that use it
  }

  testing::LoopBtrfs* MakeVolume(uint64_t size_bytes = uint64_t{512} << 20) {
    testing::LoopBtrfs::Options options;
    options.size_bytes = size_bytes;
    absl::StatusOr<std::unique_ptr<testing::LoopBtrfs>> fs =
        testing::LoopBtrfs::Create(options);
    EXPECT_TRUE(fs.ok()) << "cannot make a loopback btrfs: " << fs.status();
    if (!fs.ok()) return nullptr;
    testing::LoopBtrfs* raw = fs->get();
    volumes_.push_back(*std::move(fs));
    EXPECT_TRUE(testing::WriteFile(raw->Path(".btrdupd.conf"),
                          "[DEFAULT]\ninitial_wait_minutes = 1\nmin_file_size = 4096\n")
                    .ok());
    return raw;
  }

  testing::DaemonProcess* StartDaemon(testing::LoopBtrfs* fs,
                                      const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {testing::DaemonBinaryPath(), "--daemon", "-v",
                                     "--socket-dir=" + socket_dir_, "--test-time-scale=60",
                                     "--scan-interval=60s"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(fs->mount_path());
    const std::string log = absl::StrCat(tmp_, "/daemon", children_.size(), ".log");
    children_.push_back(std::make_unique<testing::DaemonProcess>(argv, log));
    return children_.back().get();
  }

  std::string SocketOf(testing::LoopBtrfs* fs) {
    return SocketPathFor(socket_dir_,
                         VolumeNameForPath(testing::CanonicalPath(fs->mount_path())));
  }

  // The daemon's status reply for `fs`, parsed; a null value if it does not answer.
  JsonValue Status(testing::LoopBtrfs* fs) { return testing::QueryDaemonStatus(SocketOf(fs)); }


  static bool Shared(const std::string& a, const std::string& b) {
    absl::StatusOr<UniqueFd> fa = OpenPath(a, O_RDONLY);
    absl::StatusOr<UniqueFd> fb = OpenPath(b, O_RDONLY);
    if (!fa.ok() || !fb.ok()) return false;
    absl::StatusOr<bool> shared = SharesAllExtents(fa->get(), fb->get());
    return shared.ok() && *shared;
  }

  static int CountLines(const std::string& log, absl::string_view a, absl::string_view b) {
    int n = 0;
    for (absl::string_view line : absl::StrSplit(log, '\n')) {
      if (absl::StrContains(line, a) && absl::StrContains(line, b)) ++n;
    }
    return n;
  }

  // Writes 1 MiB blocks to `path` until the filesystem says ENOSPC; returns the bytes
  // written.
  static uint64_t FillUntilFull(const std::string& path) {
    const std::string block = testing::PatternBytes(1 << 20, 99);
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    EXPECT_GE(fd, 0) << path;
    uint64_t written = 0;
    while (fd >= 0) {
      ssize_t n = write(fd, block.data(), block.size());
      if (n <= 0) {
        EXPECT_EQ(errno, ENOSPC) << "filling " << path;
        break;
      }
      written += n;
      if (written % (16 << 20) == 0 && fsync(fd) != 0) break;
    }
    if (fd >= 0) {
      fsync(fd);
      close(fd);
    }
    sync();
    return written;
  }

  std::string tmp_;
  std::unique_ptr<testing::DaemonTestDir> dir_;
  std::string socket_dir_;
  std::vector<std::unique_ptr<testing::LoopBtrfs>> volumes_;
  std::vector<std::unique_ptr<testing::DaemonProcess>> children_;
};

}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_FAULTS_FIXTURE_H_
