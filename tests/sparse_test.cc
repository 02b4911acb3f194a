// Sparse files on a fresh loopback btrfs, through the real scanner, engine, file access
// and native backend: holes are never read (SEEK_DATA/SEEK_HOLE), their layout is part of
// the hash, a file that is only holes is not a candidate, and two 1 TiB sparse files cost
// only their data. Asserted on bytes read, not on time.

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>

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
#include "ioctl/errno_status.h"
#include "ioctl/fiemap.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using testing::PatternBytes;
using testing::RunChecked;

constexpr uint64_t kTiB = uint64_t{1} << 40;

class SparseTest : public testing::BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    const char* tmp = std::getenv("TEST_TMPDIR");
    db_dir_ = absl::StrCat(tmp ? tmp : "/tmp", "/sparse_db_", getpid());
    ASSERT_OK(RunChecked({"mkdir", "-p", db_dir_}));
    ASSERT_OK_AND_ASSIGN(index_, VolumeIndex::Open(db_dir_ + "/btrdupd.db"));
    ASSERT_OK_AND_ASSIGN(opener_, FileOpener::Open(mount_path()));
    files_ = std::make_unique<RealFileAccess>(opener_.get());
    backend_ = std::make_unique<NativeBackend>(opener_.get());
  }
  void TearDown() override {
    backend_.reset();
    files_.reset();
    opener_.reset();
    index_.reset();
    BtrfsTest::TearDown();
    RunChecked({"rm", "-rf", db_dir_}).IgnoreError();
  }

  // A `size`-byte sparse file with `data` written at each of `offsets`.
  absl::Status Sparse(const std::string& name, uint64_t size, const std::string& data,
                      std::vector<uint64_t> offsets) {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenPath(Path(name), O_WRONLY | O_CREAT, 0644));
    bool ok = ftruncate(fd.get(), static_cast<off_t>(size)) == 0;
    for (uint64_t at : offsets) {
      ok = ok && pwrite(fd.get(), data.data(), data.size(), static_cast<off_t>(at)) ==
                     static_cast<ssize_t>(data.size());
    }
    if (!ok || fsync(fd.get()) != 0) return ErrnoToStatus(errno, absl::StrCat("write ", name));
    return absl::OkStatus();
  }

  EngineStats ScanAndRun() {
    absl::StatusOr<std::unique_ptr<RealVolumeFs>> fs = RealVolumeFs::Open(mount_path());
    EXPECT_OK(fs.status());
    if (!fs.ok()) return EngineStats();
    Scanner scanner(fs->get(), index_.get(), config_, RealClock());
    EXPECT_OK(scanner.Run(ScanMode::kAuto).status());
    EXPECT_OK(index_->EndStabilityWaits(RealClock()->Now()));
    DedupeEngine engine(index_.get(), files_.get(), backend_.get(), config_, RealClock(),
                        mount_path());
    EXPECT_OK(engine.RunUntilIdle().status());
    return engine.stats();
  }

  bool Shared(const std::string& a, const std::string& b) {
    absl::StatusOr<UniqueFd> fa = OpenPath(Path(a), O_RDONLY);
    absl::StatusOr<UniqueFd> fb = OpenPath(Path(b), O_RDONLY);
    if (!fa.ok() || !fb.ok()) return false;
    absl::StatusOr<bool> shared = SharesAllExtents(fa->get(), fb->get());
    return shared.ok() && *shared;
  }

  std::string db_dir_;
  VolumeConfig config_;
  std::unique_ptr<VolumeIndex> index_;
  std::unique_ptr<FileOpener> opener_;
  std::unique_ptr<RealFileAccess> files_;
  std::unique_ptr<NativeBackend> backend_;
};

TEST_F(SparseTest, TwoTebibyteHolesReadNothingAndAreNotCandidates) {
  ASSERT_OK(RunChecked({"truncate", "-s", "1T", Path("a"), Path("b")}));
  const EngineStats stats = ScanAndRun();
  EXPECT_EQ(stats.bytes_read, 0u);
  EXPECT_EQ(stats.files_skipped, 2);  // "all holes": not candidates
  EXPECT_EQ(stats.backend_calls, 0);
}

TEST_F(SparseTest, SparseCopiesAreHashedAndDedupedOverTheirDataOnly) {
  const std::string data = PatternBytes(256 * 1024, 3);
  const std::vector<uint64_t> at = {0, kTiB / 2, kTiB - data.size()};
  ASSERT_OK(Sparse("a", kTiB, data, at));
  ASSERT_OK(Sparse("b", kTiB, data, at));
  const EngineStats stats = ScanAndRun();
  EXPECT_LE(stats.bytes_read, 2 * at.size() * data.size());  // data only, each once
  EXPECT_EQ(stats.files_deduped, 1);
  EXPECT_TRUE(Shared("a", "b"));
}

TEST_F(SparseTest, SameDataWithAnotherHoleLayoutIsNotAGroup) {
  const std::string data = PatternBytes(64 * 1024, 4);
  ASSERT_OK(Sparse("a", 8 << 20, data, {0}));  // data, then 8 MiB - 64 KiB of hole
  std::string dense = data + std::string((8 << 20) - data.size(), '\0');  // the same bytes
  ASSERT_OK(Sparse("b", dense.size(), dense, {0}));                              // written out
  const EngineStats stats = ScanAndRun();
  EXPECT_EQ(stats.backend_calls, 0);
  EXPECT_FALSE(Shared("a", "b"));
}

}  // namespace
}  // namespace btrdupd
