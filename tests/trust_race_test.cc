// The symlink race of a root daemon, made to happen at the worst moment every time: the
// real scanner indexes a user's directory, then, right before btrdupd resolves each of
// its files (FileOpener's hook), the user swaps the directory (renameat2
// RENAME_EXCHANGE) with a symlink to a root-only directory on another filesystem (a
// tmpfs mounted for the test) or to a directory holding a device node and a FIFO.
// btrdupd must open nothing there, ever (inotify IN_OPEN on both), and the user's own
// files are still deduped once the tree is quiet. Both resolution methods (openat2 and
// the walk of kernels < 5.6). Also: a directory renamed between the scan and the hash.

#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/dedupe_engine.h"
#include "core/index.h"
#include "core/scanner.h"
#include "daemon/file_opener.h"
#include "daemon/native_backend.h"
#include "daemon/real_file_access.h"
#include "daemon/real_volume_fs.h"
#include "ioctl/fiemap.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using testing::RunChecked;
using testing::WriteFile;
using testing::WritePatternFile;

constexpr uint64_t kSize = 100000;

enum class Target { kRootOnlyDirOnTmpfs, kDeviceAndFifo };

struct Param {
  ResolveMethod method;
  Target target;
  // Opened files kept and handed out again as duplicates (FileOpener::KeepRoots), as a
  // session step does: the attack must not get through that path either.
  bool keep = false;
};

class TrustRaceTest : public testing::BtrfsTest, public ::testing::WithParamInterface<Param> {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    const char* tmp = std::getenv("TEST_TMPDIR");
    base_ = absl::StrCat(tmp ? tmp : "/tmp", "/race_", getpid());
    outside_ = base_ + "/outside";
    ASSERT_OK(RunChecked({"mkdir", "-p", outside_, base_ + "/db"}));
    ASSERT_EQ(mount("none", outside_.c_str(), "tmpfs", 0, "size=4m"), 0);
    mounted_ = true;
    // A root-only directory with files named and sized like the user's.
    ASSERT_OK(RunChecked({"mkdir", "-m", "0700", outside_ + "/secret"}));
    for (const char* name : {"a", "b", "c"}) {
      ASSERT_OK(WritePatternFile(outside_ + "/secret/" + name, kSize, 9));
    }
    // A directory where the user's names are a device node and FIFOs.
    ASSERT_OK(RunChecked({"mkdir", outside_ + "/devs"}));
    ASSERT_EQ(mknod((outside_ + "/devs/a").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
    ASSERT_EQ(mkfifo((outside_ + "/devs/b").c_str(), 0600), 0);
    ASSERT_EQ(mkfifo((outside_ + "/devs/c").c_str(), 0600), 0);

    // The user's tree: three copies in d/.
    ASSERT_EQ(mkdir(Path("d").c_str(), 0755), 0);
    for (const char* name : {"a", "b", "c"}) {
      ASSERT_OK(WritePatternFile(Path(absl::StrCat("d/", name)), kSize, 1));
    }
    const std::string target = outside_ + (GetParam().target == Target::kDeviceAndFifo
                                               ? "/devs" : "/secret");
    ASSERT_EQ(symlink(target.c_str(), Path("swap").c_str()), 0);

    inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    ASSERT_TRUE(inotify_.valid());
    for (const char* dir : {"/secret", "/devs"}) {
      ASSERT_GE(inotify_add_watch(inotify_.get(), (outside_ + dir).c_str(),
                                  IN_OPEN | IN_ACCESS),
                0);
    }

    ASSERT_OK_AND_ASSIGN(index_, VolumeIndex::Open(base_ + "/db/btrdupd.db"));
    FileOpener::Options options;
    options.method = GetParam().method;
    options.before_open = [this](const FileRef& file) {
      if (attack_ && absl::StartsWith(file.path, "d/") && !swapped_) Swap();
    };
    ASSERT_OK_AND_ASSIGN(opener_, FileOpener::Open(mount_path(), options));
    files_ = std::make_unique<RealFileAccess>(opener_.get());
    backend_ = std::make_unique<NativeBackend>(opener_.get());
  }

  void TearDown() override {
    backend_.reset();
    files_.reset();
    opener_.reset();
    index_.reset();
    inotify_.reset();
    if (mounted_) umount2(outside_.c_str(), MNT_DETACH);
    BtrfsTest::TearDown();
    RunChecked({"rm", "-rf", base_}).IgnoreError();
  }

  // d and swap trade places: d becomes the symlink (or the directory again).
  void Swap() {
    ASSERT_EQ(renameat2(AT_FDCWD, Path("d").c_str(), AT_FDCWD, Path("swap").c_str(),
                        RENAME_EXCHANGE),
              0);
    swapped_ = !swapped_;
    ++swaps_;
  }

  // The real scanner, then every indexed file is taken as stable.
  absl::Status Scan() {
    ASSIGN_OR_RETURN(std::unique_ptr<RealVolumeFs> fs, RealVolumeFs::Open(mount_path()));
    Scanner scanner(fs.get(), index_.get(), config_, RealClock());
    RETURN_IF_ERROR(scanner.Run(ScanMode::kAuto).status());
    return index_->EndStabilityWaits(RealClock()->Now());
  }

  EngineStats RunEngine() {
    std::optional<FileOpener::RootKeeper> keep;
    if (GetParam().keep) keep.emplace(opener_->KeepRoots());
    DedupeEngine engine(index_.get(), files_.get(), backend_.get(), config_, RealClock(),
                        mount_path());
    EXPECT_OK(engine.RunUntilIdle().status());
    return engine.stats();
  }

  // Opens seen by inotify since the last call.
  int OpensOutside() {
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int events = 0;
    while (true) {
      const ssize_t n = read(inotify_.get(), buf, sizeof(buf));
      if (n <= 0) break;
      for (ssize_t at = 0; at < n;) {
        const auto* event = reinterpret_cast<const struct inotify_event*>(buf + at);
        ++events;
        at += sizeof(struct inotify_event) + event->len;
      }
    }
    return events;
  }

  bool Shared(const std::string& a, const std::string& b) {
    absl::StatusOr<UniqueFd> fa = OpenPath(Path(a), O_RDONLY);
    absl::StatusOr<UniqueFd> fb = OpenPath(Path(b), O_RDONLY);
    if (!fa.ok() || !fb.ok()) return false;
    absl::StatusOr<bool> shared = SharesAllExtents(fa->get(), fb->get());
    return shared.ok() && *shared;
  }

  std::string base_;
  std::string outside_;
  bool mounted_ = false;
  bool attack_ = false;
  bool swapped_ = false;
  int swaps_ = 0;
  UniqueFd inotify_;
  VolumeConfig config_;
  std::unique_ptr<VolumeIndex> index_;
  std::unique_ptr<FileOpener> opener_;
  std::unique_ptr<RealFileAccess> files_;
  std::unique_ptr<NativeBackend> backend_;
};

TEST_P(TrustRaceTest, NothingBehindTheSwappedSymlinkIsEverOpenedAndTheFilesAreDedupedOnceQuiet) {
  ASSERT_OK(Scan());
  attack_ = true;
  const EngineStats attacked = RunEngine();
  attack_ = false;
  EXPECT_GT(swaps_, 0) << "the hook never ran: the race was not tried";
  EXPECT_GT(attacked.files_changed, 0) << "the files were not sent back to the scanner";
  EXPECT_EQ(attacked.files_skipped, 0) << "a swapped tree is not a reason to skip";
  EXPECT_EQ(attacked.bytes_read, 0u);
  EXPECT_EQ(OpensOutside(), 0) << "btrdupd opened something behind the symlink";

  // The tree is quiet again: the next scan and pass dedupe the user's files.
  if (swapped_) Swap();
  ASSERT_OK(Scan());
  RunEngine();
  EXPECT_EQ(OpensOutside(), 0);
  EXPECT_TRUE(Shared("d/a", "d/b"));
  EXPECT_TRUE(Shared("d/a", "d/c"));

  // The watch works: an open there is seen (so the zeros above mean something).
  const int fd = open((outside_ + "/devs/b").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_GT(OpensOutside(), 0);
}

TEST_P(TrustRaceTest, ADirectoryRenamedBetweenScanAndHashIsNotFollowedThenDedupedWhereItIs) {
  ASSERT_EQ(mkdir(Path("top").c_str(), 0755), 0);
  ASSERT_EQ(rename(Path("d").c_str(), Path("top/d").c_str()), 0);
  ASSERT_OK(Scan());
  ASSERT_EQ(rename(Path("top/d").c_str(), Path("top/moved").c_str()), 0);
  ASSERT_EQ(symlink(Path("top/moved").c_str(), Path("top/d").c_str()), 0);  // a link in its place
  const EngineStats first = RunEngine();
  EXPECT_EQ(first.bytes_read, 0u);
  EXPECT_EQ(first.files_skipped, 0);
  EXPECT_EQ(first.files_deduped, 0);
  EXPECT_GT(first.files_changed, 0);  // back to the scanner
  ASSERT_OK(Scan());
  const EngineStats second = RunEngine();
  EXPECT_EQ(second.files_deduped, 2);
  EXPECT_TRUE(Shared("top/moved/a", "top/moved/b"));
  EXPECT_TRUE(Shared("top/moved/a", "top/moved/c"));
  EXPECT_EQ(OpensOutside(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    AllWays, TrustRaceTest,
    ::testing::Values(Param{ResolveMethod::kOpenat2, Target::kRootOnlyDirOnTmpfs},
                      Param{ResolveMethod::kOpenat2, Target::kDeviceAndFifo},
                      Param{ResolveMethod::kWalk, Target::kRootOnlyDirOnTmpfs},
                      Param{ResolveMethod::kWalk, Target::kDeviceAndFifo},
                      Param{ResolveMethod::kOpenat2, Target::kRootOnlyDirOnTmpfs, true},
                      Param{ResolveMethod::kWalk, Target::kDeviceAndFifo, true}),
    [](const ::testing::TestParamInfo<Param>& info) {
      return absl::StrCat(info.param.method == ResolveMethod::kWalk ? "Walk" : "Openat2",
                          info.param.target == Target::kDeviceAndFifo ? "DeviceAndFifo"
                                                                      : "RootOnlyTmpfs",
                          info.param.keep ? "Kept" : "");
    });

}  // namespace
}  // namespace btrdupd
