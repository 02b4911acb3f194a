// The fixture of the VolumeFs contract suites (tests/volume_fs_contract_test.cc,
// tests/volume_fs_changes_contract_test.cc): each case runs once on the fake and once on
// RealVolumeFs over a fresh loopback btrfs (tests/testing/volume_worlds.h), with helpers
// that return a Status rather than assert, so a failing look stops the case at its call.

#ifndef BTRDUPD_TESTS_TESTING_VOLUME_FS_CONTRACT_H_
#define BTRDUPD_TESTS_TESTING_VOLUME_FS_CONTRACT_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/volume_fs.h"
#include "tests/testing/status_macros.h"
#include "tests/testing/volume_worlds.h"

namespace btrdupd {
namespace testing {

inline constexpr uint64_t kTopLevelId = 5;
inline constexpr uint64_t kRootInode = 256;

enum class VolumeImpl { kFake, kReal };

inline std::string ImplName(const ::testing::TestParamInfo<VolumeImpl>& info) {
  return info.param == VolumeImpl::kFake ? "Fake" : "Real";
}

class VolumeFsContract : public ::testing::TestWithParam<VolumeImpl> {
 protected:
  void SetUp() override {
    if (GetParam() == VolumeImpl::kFake) {
      world_ = MakeFakeVolumeWorld();
    } else {
      ASSERT_OK_AND_ASSIGN(world_, MakeRealVolumeWorld());
    }
    fs_ = world_->fs();
  }

  // The listed subvolumes by path.
  absl::StatusOr<std::map<std::string, VolumeSubvolume>> Subvolumes() {
    absl::StatusOr<std::vector<VolumeSubvolume>> listed = fs_->ListSubvolumes();
    if (!listed.ok()) return listed.status();
    std::map<std::string, VolumeSubvolume> by_path;
    for (VolumeSubvolume& sub : *listed) by_path[sub.path] = std::move(sub);
    return by_path;
  }

  static std::vector<std::string> Paths(const std::map<std::string, VolumeSubvolume>& subs) {
    std::vector<std::string> paths;
    for (const auto& [path, sub] : subs) paths.push_back(path);
    return paths;
  }

  absl::StatusOr<uint64_t> Ino(const std::string& path) {
    absl::StatusOr<VolumeStat> st = fs_->Stat(path);
    if (!st.ok()) return st.status();
    return st->ino;
  }

  // The changed inodes of a subvolume by inode number.
  absl::StatusOr<std::map<uint64_t, InodeChange>> Changes(const std::string& subvol,
                                                          uint64_t generation) {
    absl::StatusOr<std::vector<InodeChange>> changed =
        fs_->ChangedInodesSince(subvol, generation);
    if (!changed.ok()) return changed.status();
    std::map<uint64_t, InodeChange> by_ino;
    for (const InodeChange& c : *changed) by_ino[c.ino] = c;
    return by_ino;
  }

  static std::vector<uint64_t> Inos(const std::map<uint64_t, InodeChange>& changes) {
    std::vector<uint64_t> inos;
    for (const auto& [ino, change] : changes) inos.push_back(ino);
    return inos;
  }

  // The newest transid of the subvolume's inodes, once every change so far is
  // committed: a search from it lists exactly what changes afterwards.
  absl::StatusOr<uint64_t> CommittedTransid(const std::string& subvol) {
    absl::Status committed = world_->Commit();
    if (!committed.ok()) return committed;
    absl::StatusOr<std::map<uint64_t, InodeChange>> all = Changes(subvol, 0);
    if (!all.ok()) return all.status();
    uint64_t newest = 0;
    for (const auto& [ino, change] : *all) newest = std::max(newest, change.transid);
    return newest;
  }

  std::unique_ptr<VolumeWorld> world_;
  VolumeFs* fs_ = nullptr;
};

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_VOLUME_FS_CONTRACT_H_
