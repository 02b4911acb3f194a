// Names derived from a volume's mount path always fit, and one volume's trouble never
// stops the others (issue 8), end to end on loopback btrfs: the built
// `btrdupd --daemon` runs as a child process (tests/testing/daemon_process.h).
//
// A volume mounted 1 500 bytes deep, under directories named in three scripts (most of
// its bytes are escaped to four in its name), is served next to a normal one: both
// answer on their status sockets (the long one's socket name is shortened to fit
// sun_path), both get deduped; its database inside the volume is opened through its
// directory (a path that long is too long for SQLite), and under --db-dir its file name
// stays within NAME_MAX.
//
// Time: --test-time-scale=60 and initial_wait_minutes=1, as in daemon_test. Nothing
// asserts a duration.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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
namespace {

using ::btrdupd::testing::JsonNumberAt;
using ::btrdupd::testing::CanonicalPath;
using ::btrdupd::testing::DaemonProcess;
using ::btrdupd::testing::LoopBtrfs;
using ::btrdupd::testing::RunCommand;
using ::btrdupd::testing::WaitFor;
using ::btrdupd::testing::WriteFile;
using ::btrdupd::testing::WritePatternFile;
using ::testing::HasSubstr;

constexpr uint64_t kSize = 300000;

class VolumePathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(dir_, testing::DaemonTestDir::Create(/*own_test_tmpdir=*/false));
    tmp_ = dir_->path();
    socket_dir_ = dir_->socket_dir();
  }

  void TearDown() override {
    children_.clear();  // kill and reap before unmounting
    volumes_.clear();
    dir_.reset();  // after the children and volumes that use it
  }

  // A fresh btrfs mounted below `parent` (LoopBtrfs makes its directories there).
  LoopBtrfs* MakeVolumeUnder(const std::string& parent) {
    setenv("TEST_TMPDIR", parent.c_str(), 1);
    absl::StatusOr<std::unique_ptr<LoopBtrfs>> fs = LoopBtrfs::Create();
    EXPECT_TRUE(fs.ok()) << "cannot make a loopback btrfs: " << fs.status();
    if (!fs.ok()) return nullptr;
    LoopBtrfs* raw = fs->get();
    volumes_.push_back(*std::move(fs));
    EXPECT_TRUE(WriteFile(raw->Path(".btrdupd.conf"),
                          "[DEFAULT]\ninitial_wait_minutes = 1\nmin_file_size = 4096\n")
                    .ok());
    EXPECT_TRUE(WritePatternFile(raw->Path("one"), kSize, 7).ok());
    EXPECT_TRUE(WritePatternFile(raw->Path("two"), kSize, 7).ok());
    return raw;
  }

  // Nested directories 1 500 bytes deep below the temp dir, named in three scripts.
  std::string MakeLongNonAsciiDir() {
    std::string dir = tmp_;
    const std::string part =
        "r\xc3\xa9pertoire-\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x87"
        "\xe3\x83\xbc\xe3\x82\xbf-\xd0\xb4\xd0\xb0\xd0\xbd\xd0\xbd\xd1\x8b\xd0\xb5-";
    for (int i = 0; dir.size() < 1500; ++i) {
      dir = absl::StrCat(dir, "/", part, part, part, i);
      EXPECT_EQ(mkdir(dir.c_str(), 0755), 0) << dir.size();
    }
    return dir;
  }

  DaemonProcess* StartDaemon(const std::vector<LoopBtrfs*>& vols,
                             const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {testing::DaemonBinaryPath(), "--daemon", "-v",
                                     "--socket-dir=" + socket_dir_, "--test-time-scale=60",
                                     "--scan-interval=60s", "--test-clock-offset=1h"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    for (LoopBtrfs* v : vols) argv.push_back(v->mount_path());
    const std::string log = absl::StrCat(tmp_, "/daemon", children_.size(), ".log");
    children_.push_back(std::make_unique<DaemonProcess>(argv, log));
    return children_.back().get();
  }

  std::string SocketOf(LoopBtrfs* fs) {
    return SocketPathFor(socket_dir_, VolumeNameForPath(CanonicalPath(fs->mount_path())));
  }

  JsonValue Status(LoopBtrfs* fs) { return testing::QueryDaemonStatus(SocketOf(fs)); }


  static bool Shared(LoopBtrfs* fs) {
    absl::StatusOr<UniqueFd> a = OpenPath(fs->Path("one"), O_RDONLY);
    absl::StatusOr<UniqueFd> b = OpenPath(fs->Path("two"), O_RDONLY);
    if (!a.ok() || !b.ok()) return false;
    absl::StatusOr<bool> shared = SharesAllExtents(a->get(), b->get());
    return shared.ok() && *shared;
  }

  // Runs btrdupd to completion; returns {exit code, stdout+stderr}.
  std::pair<int, std::string> RunBinary(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {testing::DaemonBinaryPath()};
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<testing::CommandResult> r = RunCommand(argv);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {-1, ""};
    return {r->exit_code, r->stdout_text + r->stderr_text};
  }

  std::string tmp_;
  std::unique_ptr<testing::DaemonTestDir> dir_;
  std::string socket_dir_;
  std::vector<std::unique_ptr<LoopBtrfs>> volumes_;
  std::vector<std::unique_ptr<DaemonProcess>> children_;
};

TEST_F(VolumePathsTest, LongNonAsciiMountPathIsServedNextToANormalVolume) {
  LoopBtrfs* normal = MakeVolumeUnder(tmp_);
  ASSERT_NE(normal, nullptr);
  const std::string deep = MakeLongNonAsciiDir();
  LoopBtrfs* long_one = MakeVolumeUnder(deep);
  ASSERT_NE(long_one, nullptr);
  const std::string mount = CanonicalPath(long_one->mount_path());
  ASSERT_GT(mount.size(), 1500u);
  ASSERT_LT(mount.size(), static_cast<size_t>(PATH_MAX) - 100);
  // Escaped, its name would be about four times as long.
  const std::string name = VolumeNameForPath(mount);
  EXPECT_LE(name.size(), kMaxVolumeNameBytes);
  const std::string socket = SocketOf(long_one);
  EXPECT_LE(socket.size(), kMaxSocketPathBytes) << socket;

  DaemonProcess* d = StartDaemon({normal, long_one});
  ASSERT_TRUE(WaitFor([&] {
    return JsonNumberAt(Status(long_one), "files_deduped") >= 1 &&
           JsonNumberAt(Status(normal), "files_deduped") >= 1;
  })) << d->Log();
  EXPECT_TRUE(Shared(long_one));
  EXPECT_TRUE(Shared(normal));
  struct stat st;
  ASSERT_EQ(lstat(socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  // The database inside the volume, at a path longer than SQLite takes.
  EXPECT_EQ(stat(long_one->Path(".btrdupd/btrdupd.db").c_str(), &st), 0);
  EXPECT_GT(long_one->Path(".btrdupd/btrdupd.db").size(), 512u);
  // The client finds the same socket.
  std::pair<int, std::string> asked =
      RunBinary({"--daemon-status", "--socket-dir=" + socket_dir_, long_one->mount_path()});
  EXPECT_EQ(asked.first, 0) << asked.second;
  ASSERT_EQ(d->Signal(SIGTERM), 0) << d->Log();

  // --status reads that database through its directory too.
  std::pair<int, std::string> status = RunBinary({"--status", long_one->mount_path()});
  EXPECT_EQ(status.first, 0) << status.second;
  EXPECT_THAT(status.second, HasSubstr("btrdupd.db"));

  // Under --db-dir the database is named after the volume: within a file name's limit.
  const std::string dbs = tmp_ + "/dbs";
  ASSERT_EQ(mkdir(dbs.c_str(), 0700), 0);
  std::pair<int, std::string> one_shot =
      RunBinary({"--no-wait", "-q", "--db-dir=" + dbs, long_one->mount_path()});
  EXPECT_EQ(one_shot.first, 0) << one_shot.second;
  const std::string db_name = absl::StrCat(name, ".btrdupd.db");
  EXPECT_LE(db_name.size(), static_cast<size_t>(NAME_MAX));
  EXPECT_EQ(stat(absl::StrCat(dbs, "/", db_name).c_str(), &st), 0) << db_name;
}

TEST_F(VolumePathsTest, AVolumeWhoseSocketCannotBeMadeIsServedAndSoIsTheOther) {
  LoopBtrfs* blocked = MakeVolumeUnder(tmp_);
  ASSERT_NE(blocked, nullptr);
  LoopBtrfs* other = MakeVolumeUnder(tmp_);
  ASSERT_NE(other, nullptr);
  // A plain file where the first volume's socket goes: the daemon will not remove it.
  ASSERT_TRUE(WriteFile(SocketOf(blocked), "not a socket").ok());

  DaemonProcess* d = StartDaemon({blocked, other});
  ASSERT_TRUE(WaitFor([&] { return JsonNumberAt(Status(other), "files_deduped") >= 1; })) << d->Log();
  ASSERT_TRUE(WaitFor([&] { return Shared(blocked); })) << d->Log();
  EXPECT_TRUE(d->running());
  EXPECT_THAT(d->Log(), HasSubstr("no status socket"));
  ASSERT_EQ(d->Signal(SIGTERM), 0) << d->Log();
}

}  // namespace
}  // namespace btrdupd
