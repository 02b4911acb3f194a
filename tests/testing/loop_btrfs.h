// A fresh btrfs filesystem on a loop device, for integration tests.
//
// LoopBtrfs::Create makes a temporary directory (under $TEST_TMPDIR if set,
// else /tmp), creates a sparse image file there, formats it with
// `mkfs.btrfs -q -f` and mounts it with `mount -o loop` on a directory next to
// the image. Destroying the object unmounts the filesystem (retrying, then
// lazily as a last resort), detaches any loop device still bound to the
// image, and removes the image and the temporary directory. Construction that
// fails half-way undoes what it did.
//
// Needs root and a kernel with btrfs and loop support; Bazel tests that use it
// must be tagged "local" because the sandbox refuses mount(2).
//
// Thread-compatible: one owner, no internal locking.

#ifndef BTRDUPD_TESTS_TESTING_LOOP_BTRFS_H_
#define BTRDUPD_TESTS_TESTING_LOOP_BTRFS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace btrdupd {
namespace testing {

class LoopBtrfs {
 public:
  struct Options {
    // Size of the (sparse) image file.
    uint64_t size_bytes = uint64_t{512} << 20;
    // Extra arguments for mkfs.btrfs, e.g. {"--nodesize", "4096"}.
    std::vector<std::string> mkfs_args;
    // Comma-separated mount options added after "loop", e.g. "compress=zstd".
    std::string mount_options;
  };

  // Creates, formats and mounts a new filesystem. On failure the error names
  // the step that failed and includes the command's stderr.
  static absl::StatusOr<std::unique_ptr<LoopBtrfs>> Create(const Options& options);
  static absl::StatusOr<std::unique_ptr<LoopBtrfs>> Create() { return Create(Options()); }

  LoopBtrfs(const LoopBtrfs&) = delete;
  LoopBtrfs& operator=(const LoopBtrfs&) = delete;

  // Unmounts and removes everything; problems are reported on stderr.
  ~LoopBtrfs();

  // Directory where the filesystem is mounted (its top-level subvolume).
  const std::string& mount_path() const { return mount_path_; }

  // The backing image file.
  const std::string& image_path() const { return image_path_; }

  // mount_path() + "/" + relative.
  std::string Path(absl::string_view relative) const;

 private:
  explicit LoopBtrfs(std::string temp_dir);

  absl::Status FormatAndMount(const Options& options);
  void Unmount();
  void DetachLoopDevices();

  const std::string temp_dir_;
  const std::string image_path_;
  const std::string mount_path_;
  bool mounted_ = false;
};

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_LOOP_BTRFS_H_
