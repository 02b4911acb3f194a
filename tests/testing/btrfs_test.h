// GoogleTest fixture giving each test its own freshly made btrfs filesystem.
//
//   class DedupeTest : public btrdupd::testing::BtrfsTest {};
//   TEST_F(DedupeTest, Something) { WritePatternFile(Path("a"), ...); }
//
// SetUp fails the test (never skips it) with the mkfs/mount error when the
// filesystem cannot be made. Override FilesystemOptions() for other sizes or
// mount options. The filesystem is unmounted when the fixture is destroyed,
// after the members of derived fixtures (e.g. open descriptors on it) are
// gone, so they do not keep it busy.

#ifndef BTRDUPD_TESTS_TESTING_BTRFS_TEST_H_
#define BTRDUPD_TESTS_TESTING_BTRFS_TEST_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "tests/testing/loop_btrfs.h"

namespace btrdupd {
namespace testing {

class BtrfsTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // Options for the filesystem SetUp creates.
  virtual LoopBtrfs::Options FilesystemOptions() const { return LoopBtrfs::Options(); }

  // Where the filesystem is mounted. REQUIRES: SetUp succeeded.
  const std::string& mount_path() const { return fs_->mount_path(); }

  // mount_path() + "/" + relative.
  std::string Path(absl::string_view relative) const { return fs_->Path(relative); }

  std::unique_ptr<LoopBtrfs> fs_;
};

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_BTRFS_TEST_H_
