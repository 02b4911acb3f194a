#include "tests/testing/btrfs_test.h"

#include "absl/status/statusor.h"

namespace btrdupd {
namespace testing {

void BtrfsTest::SetUp() {
  absl::StatusOr<std::unique_ptr<LoopBtrfs>> fs = LoopBtrfs::Create(FilesystemOptions());
  ASSERT_TRUE(fs.ok()) << "cannot make a loopback btrfs: " << fs.status();
  fs_ = *std::move(fs);
}

}  // namespace testing
}  // namespace btrdupd
