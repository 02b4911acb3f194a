// Large files hashed in slices (issue 8): one unit of daemon work reads at most
// EngineOptions::hash_slice_bytes of a file; the digest state and the open file are kept
// between units. On real loopback btrfs, made deterministic by a small slice size (a
// file needs many slices) and, for the daemon, --test-hold-hash-while (the hash stays
// part-way while a file exists). No timed assertions.
//  - Engine: a file hashed in slices gets the digest a one-step hash gets and is
//    deduped; a file changed between two slices is not hashed from mixed states (the
//    partial hash is dropped, the file waits again, and is hashed whole afterwards).
//  - Daemon: while a large file is part-way, its volume's status socket answers and
//    reports the hashing in progress, and the other volume is served; then the file is
//    hashed and deduped.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/dedupe_engine.h"
#include "core/index.h"
#include "core/scanner.h"
#include "daemon/file_opener.h"
#include "daemon/native_backend.h"
#include "daemon/real_file_access.h"
#include "daemon/real_volume_fs.h"
#include "daemon/status_json.h"
#include "daemon/status_server.h"
#include "daemon/volume_name.h"
#include "ioctl/fiemap.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
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

constexpr uint64_t kBig = 4 * 1024 * 1024 + 12345;  // not a multiple of the slice
constexpr uint64_t kSlice = 256 * 1024;

bool Shared(const std::string& a, const std::string& b) {
  absl::StatusOr<UniqueFd> fa = OpenPath(a, O_RDONLY);
  absl::StatusOr<UniqueFd> fb = OpenPath(b, O_RDONLY);
  if (!fa.ok() || !fb.ok()) return false;
  absl::StatusOr<bool> shared = SharesAllExtents(fa->get(), fb->get());
  return shared.ok() && *shared;
}

class HashSlicesEngineTest : public testing::BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    const char* tmp = std::getenv("TEST_TMPDIR");
    db_dir_ = absl::StrCat(tmp ? tmp : "/tmp", "/slices_", getpid());
    ASSERT_OK(testing::RunChecked({"mkdir", "-p", db_dir_}));
    ASSERT_OK(WritePatternFile(Path("a"), kBig, 3));
    ASSERT_OK(WritePatternFile(Path("b"), kBig, 3));
    ASSERT_OK_AND_ASSIGN(index_, VolumeIndex::Open(db_dir_ + "/btrdupd.db"));
    ASSERT_OK_AND_ASSIGN(opener_, FileOpener::Open(mount_path()));
    files_ = std::make_unique<RealFileAccess>(opener_.get());
    backend_ = std::make_unique<NativeBackend>(opener_.get());
    Scan();
  }

  void TearDown() override {
    engine_.reset();
    backend_.reset();
    files_.reset();
    opener_.reset();
    index_.reset();
    BtrfsTest::TearDown();
    testing::RunChecked({"rm", "-rf", db_dir_}).IgnoreError();
  }

  // The real scanner; then every indexed file is stable.
  void Scan(ScanMode mode = ScanMode::kAuto) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<RealVolumeFs> fs, RealVolumeFs::Open(mount_path()));
    fs->set_commit_before_listing(true);
    Scanner scanner(fs.get(), index_.get(), config_, RealClock());
    ASSERT_OK(scanner.Run(mode).status());
    ASSERT_OK(index_->EndStabilityWaits(RealClock()->Now()));
  }

  DedupeEngine& Engine() {
    if (engine_ == nullptr) {
      EngineOptions options;
      options.hash_slice_bytes = kSlice;
      engine_ = std::make_unique<DedupeEngine>(index_.get(), files_.get(), backend_.get(),
                                               config_, RealClock(), mount_path(), options);
    }
    return *engine_;
  }

  // Steps until a hash is part-way; the slices taken.
  int StepUntilPartWay() {
    for (int steps = 1; steps < 1000; ++steps) {
      absl::StatusOr<StepResult> step = Engine().Step();
      EXPECT_OK(step.status());
      if (!step.ok() || step->kind == StepResult::Kind::kIdle) return -1;
      if (Engine().hash_progress().has_value()) return steps;
    }
    return -1;
  }

  std::string db_dir_;
  VolumeConfig config_;
  std::unique_ptr<VolumeIndex> index_;
  std::unique_ptr<FileOpener> opener_;
  std::unique_ptr<RealFileAccess> files_;
  std::unique_ptr<NativeBackend> backend_;
  std::unique_ptr<DedupeEngine> engine_;
};

TEST_F(HashSlicesEngineTest, ALargeFileIsHashedOverSeveralStepsToTheOneStepDigest) {
  ASSERT_GT(StepUntilPartWay(), 0);
  int slices = 0;
  uint64_t last = 0;
  while (Engine().hash_progress().has_value()) {
    const HashProgress p = *Engine().hash_progress();
    EXPECT_GT(p.offset, last);  // each step goes further, never back
    EXPECT_LE(p.offset - last, kSlice);
    EXPECT_EQ(p.size, kBig);
    last = p.offset;
    ASSERT_OK_AND_ASSIGN(StepResult step, Engine().Step());
    ++slices;
    EXPECT_LE(step.bytes_read, kSlice) << "a step read more than one slice";
  }
  EXPECT_GE(slices, static_cast<int>(kBig / kSlice) - 1);
  ASSERT_OK(Engine().RunUntilIdle().status());
  EXPECT_TRUE(Shared(Path("a"), Path("b")));

  // The digest is the one a one-step hash computes (a fresh index, no slices).
  ASSERT_OK_AND_ASSIGN(std::vector<FileRecord> sliced, index_->FilesOfSize(kBig));
  ASSERT_EQ(sliced.size(), 2u);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<VolumeIndex> fresh,
                       VolumeIndex::Open(db_dir_ + "/fresh.db"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RealVolumeFs> fs, RealVolumeFs::Open(mount_path()));
  Scanner scanner(fs.get(), fresh.get(), config_, RealClock());
  ASSERT_OK(scanner.Run(ScanMode::kAuto).status());
  ASSERT_OK(fresh->EndStabilityWaits(RealClock()->Now()));
  FileHasher hasher(files_.get(), FileHasherOptions());
  ASSERT_OK_AND_ASSIGN(std::vector<FileRecord> whole, fresh->FilesOfSize(kBig));
  ASSERT_FALSE(whole.empty());
  FileRef ref;
  ref.subvol_id = whole[0].subvol_id;
  ref.path = whole[0].path;
  ref.ino = whole[0].ino;
  ref.display = Path(whole[0].path);
  ASSERT_OK_AND_ASSIGN(HashReading one_step, hasher.Hash(ref, whole[0], false));
  ASSERT_EQ(one_step.outcome, HashReading::Outcome::kFull);
  for (const FileRecord& f : sliced) {
    EXPECT_EQ(f.hash_state, HashState::kFull);
    EXPECT_EQ(f.hash, one_step.full_digest) << f.path;
  }
}

TEST_F(HashSlicesEngineTest, AFileChangedBetweenTwoSlicesIsNotHashedFromMixedStates) {
  ASSERT_GT(StepUntilPartWay(), 0);
  const std::string part_way = Engine().hash_progress()->path;
  // Its first bytes, already hashed, are written again (same bytes: only the file's
  // times change, so a mixed digest would even look right).
  {
    const std::string head = testing::PatternBytes(4096, 3);
    UniqueFd fd(open(part_way.c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(pwrite(fd.get(), head.data(), head.size(), 0), 4096);
  }
  ASSERT_OK_AND_ASSIGN(StepResult step, Engine().Step());
  EXPECT_EQ(step.files_changed, 1) << step.detail;
  EXPECT_FALSE(Engine().hash_progress().has_value()) << "the partial hash was kept";
  ASSERT_OK_AND_ASSIGN(std::vector<FileRecord> files, index_->FilesOfSize(kBig));
  for (const FileRecord& f : files) {
    if (Path(f.path) == part_way) {
      EXPECT_NE(f.hash_state, HashState::kFull);
      EXPECT_GT(f.next_eligible, RealClock()->Now()) << "it should wait again";
    }
  }
  // Once the tree is quiet (the write reaches the inode item when it is written back):
  // an incremental scan sees it, it is hashed whole and deduped (the pass it was dropped
  // in is finished first; the next one takes it).
  ASSERT_OK(testing::RunChecked({"sync", "-f", mount_path()}));
  Scan(ScanMode::kAuto);
  ASSERT_OK(Engine().RunUntilIdle().status());
  ASSERT_OK(Engine().RunUntilIdle().status());
  EXPECT_TRUE(Shared(Path("a"), Path("b")));
}

class HashSlicesDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(dir_, testing::DaemonTestDir::Create());
    tmp_ = dir_->path();
    socket_dir_ = dir_->socket_dir();
  }

  void TearDown() override {
    children_.clear();
    volumes_.clear();
    dir_.reset();  // after the children and volumes that use it
  }

  LoopBtrfs* MakeVolume(uint64_t pair_size) {
    absl::StatusOr<std::unique_ptr<LoopBtrfs>> fs = LoopBtrfs::Create();
    EXPECT_TRUE(fs.ok()) << fs.status();
    if (!fs.ok()) return nullptr;
    LoopBtrfs* raw = fs->get();
    volumes_.push_back(*std::move(fs));
    EXPECT_TRUE(WriteFile(raw->Path(".btrdupd.conf"),
                          "[DEFAULT]\ninitial_wait_minutes = 1\nmin_file_size = 4096\n")
                    .ok());
    EXPECT_TRUE(WritePatternFile(raw->Path("one"), pair_size, 5).ok());
    EXPECT_TRUE(WritePatternFile(raw->Path("two"), pair_size, 5).ok());
    return raw;
  }

  JsonValue Status(LoopBtrfs* fs) {
    return testing::QueryDaemonStatus(
        SocketPathFor(socket_dir_, VolumeNameForPath(CanonicalPath(fs->mount_path()))));
  }


  std::string tmp_;
  std::unique_ptr<testing::DaemonTestDir> dir_;
  std::string socket_dir_;
  std::vector<std::unique_ptr<LoopBtrfs>> volumes_;
  std::vector<std::unique_ptr<DaemonProcess>> children_;
};

TEST_F(HashSlicesDaemonTest, StatusAnswersAndOtherVolumesAreServedWhileALargeFileIsHashed) {
  LoopBtrfs* large = MakeVolume(kBig);
  ASSERT_NE(large, nullptr);
  LoopBtrfs* other = MakeVolume(kSlice / 2);  // hashed in one unit
  ASSERT_NE(other, nullptr);
  const std::string hold = tmp_ + "/hold";
  ASSERT_TRUE(WriteFile(hold, "").ok());

  std::vector<std::string> argv = {
      testing::DaemonBinaryPath(), "--daemon", "-v", "--socket-dir=" + socket_dir_,
      "--test-time-scale=60", "--scan-interval=60s", "--test-clock-offset=1h",
      absl::StrCat("--test-hash-slice-bytes=", kSlice), "--test-hold-hash-while=" + hold,
      large->mount_path(), other->mount_path()};
  children_.push_back(std::make_unique<DaemonProcess>(argv, tmp_ + "/daemon.log"));
  DaemonProcess* d = children_.back().get();

  // The large file is part-way (held there): the socket answers and says so.
  JsonValue part_way;
  ASSERT_TRUE(WaitFor([&] {
    part_way = Status(large);
    return part_way.Find("hashing") != nullptr;
  })) << d->Log();
  const JsonValue& hashing = *part_way.Find("hashing");
  EXPECT_GT(JsonNumberAt(hashing, "bytes_done"), 0);
  EXPECT_LT(JsonNumberAt(hashing, "bytes_done"), static_cast<double>(kBig));
  EXPECT_EQ(JsonNumberAt(hashing, "size"), static_cast<double>(kBig));
  EXPECT_THAT(part_way.Find("activity")->string, ::testing::HasSubstr("hashing"));
  // Meanwhile the other volume is served to the end.
  ASSERT_TRUE(WaitFor([&] { return JsonNumberAt(Status(other), "files_deduped") >= 1; })) << d->Log();
  EXPECT_TRUE(Shared(other->Path("one"), other->Path("two")));
  EXPECT_NE(Status(large).Find("hashing"), nullptr);  // still held part-way

  // Let it go on: hashed to the end and deduped.
  ASSERT_EQ(unlink(hold.c_str()), 0);
  ASSERT_TRUE(WaitFor([&] { return JsonNumberAt(Status(large), "files_deduped") >= 1; })) << d->Log();
  EXPECT_TRUE(Shared(large->Path("one"), large->Path("two")));
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
}

}  // namespace
}  // namespace btrdupd
