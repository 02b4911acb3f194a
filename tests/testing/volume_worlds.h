// The same small volume arranged for a VolumeFs (core/volume_fs.h) in two worlds: the
// fake (tests/testing/fake_volume_fs.h) and RealVolumeFs over a fresh loopback btrfs. The
// contract suite (tests/volume_fs_contract_test.cc) runs every case in both, so the fake
// is held to what the kernel does.
//
// Paths are relative to the volume root, as in core/volume_fs.h. Each change is made
// the way a user would make it (write(2), rename(2), chmod(2), `btrfs subvolume ...`,
// a tmpfs mount); Commit() makes changes so far visible to the tree search (btrfs'
// delayed inodes; nothing to do in the fake).
//
// Test-only; not thread-safe.

#ifndef BTRDUPD_TESTS_TESTING_VOLUME_WORLDS_H_
#define BTRDUPD_TESTS_TESTING_VOLUME_WORLDS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/volume_fs.h"

namespace btrdupd {
namespace testing {

class VolumeWorld {
 public:
  virtual ~VolumeWorld() = default;

  // The VolumeFs under test. Valid while the world lives.
  virtual VolumeFs* fs() = 0;

  // Creates a regular file of `size` bytes, or rewrites an existing one in place (same
  // inode) to `size` bytes.
  virtual absl::Status WriteFile(const std::string& path, uint64_t size) = 0;
  virtual absl::Status MakeDir(const std::string& path) = 0;
  // A symlink to "target" (which does not exist).
  virtual absl::Status Symlink(const std::string& path) = 0;
  virtual absl::Status MakeFifo(const std::string& path) = 0;
  virtual absl::Status HardLink(const std::string& existing, const std::string& path) = 0;
  // Removes a file, symlink or a whole directory tree (not a subvolume).
  virtual absl::Status Remove(const std::string& path) = 0;
  virtual absl::Status Rename(const std::string& from, const std::string& to) = 0;
  // Changes the inode but not its size or mtime (chmod).
  virtual absl::Status TouchMetadata(const std::string& path) = 0;
  virtual absl::Status CreateSubvolume(const std::string& path) = 0;
  virtual absl::Status Snapshot(const std::string& source, const std::string& path,
                                bool read_only) = 0;
  virtual absl::Status DeleteSubvolume(const std::string& path) = 0;
  // Mounts another (empty) filesystem over the directory at `path`.
  virtual absl::Status MountForeign(const std::string& path) = 0;
  // Makes every change so far visible to ChangedInodesSince.
  virtual absl::Status Commit() = 0;
};

std::unique_ptr<VolumeWorld> MakeFakeVolumeWorld();

// RealVolumeFs over a new loopback btrfs (unmounted when the world is destroyed).
absl::StatusOr<std::unique_ptr<VolumeWorld>> MakeRealVolumeWorld();

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_VOLUME_WORLDS_H_
