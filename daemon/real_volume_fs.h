// RealVolumeFs: core/volume_fs.h over a mounted btrfs volume, through ioctl/.
//
// Open() checks that the path is on btrfs and remembers its fsid and a descriptor of the
// volume root; every path afterwards is resolved beneath that descriptor, following no
// symlink in any component and crossing no mount (ioctl/open_beneath.h): a path that
// leads through a symlink or onto another mount is NotFound (no directory is there, as
// the scanner sees the volume), so nothing outside the volume is ever listed or
// statted, and a directory renamed away with a symlink left in its place is not found
// again through the link. ListSubvolumes() lists the subvolumes
// below the root with libbtrfsutil (ioctl/subvolumes.h) and keeps only those reachable
// at their path on the same filesystem (same fsid, the expected subvolume id, root
// inode 256): one hidden under another mount is left out. Change tracking is
// TREE_SEARCH_V2 (ioctl/tree_search.h) on the subvolume's root directory.
//
// Needs root (tree search and subvolume listing need CAP_SYS_ADMIN).
// Thread-compatible.

#ifndef BTRDUPD_DAEMON_REAL_VOLUME_FS_H_
#define BTRDUPD_DAEMON_REAL_VOLUME_FS_H_

#include <fcntl.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/volume_fs.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {

class RealVolumeFs : public VolumeFs {
 public:
  // FailedPrecondition when `root` is not on btrfs; the open error otherwise.
  static absl::StatusOr<std::unique_ptr<RealVolumeFs>> Open(const std::string& root);

  std::string root() const override { return root_; }
  const std::string& fsid() const { return fsid_; }

  // With `commit` (VolumeSession turns it on), ListSubvolumes() first commits the running
  // transaction (ioctl/filesystem.h CommitTransaction; nothing to do when none runs).
  // A generation it then lists at or below the committed transid is exact: without the
  // commit one equal to the newest transaction may still be running and is reported one
  // less, so the next pass sees that whole transaction's changes again.
  void set_commit_before_listing(bool commit) { commit_before_listing_ = commit; }

  absl::StatusOr<std::vector<VolumeSubvolume>> ListSubvolumes() override;
  absl::StatusOr<std::unique_ptr<VolumeDir>> OpenDir(absl::string_view path) override;
  absl::StatusOr<VolumeStat> Stat(absl::string_view path) override;
  absl::StatusOr<std::vector<InodeChange>> ChangedInodesSince(absl::string_view subvol_path,
                                                              uint64_t generation) override;
  absl::StatusOr<std::string> InodePath(absl::string_view subvol_path, uint64_t ino) override;

 private:
  RealVolumeFs(std::string root, UniqueFd root_fd, std::string fsid);

  // Opens `path` (relative to the root; "" = the root) as a directory, beneath the
  // root, with `flags` (O_RDONLY, or O_PATH to stat below it).
  absl::StatusOr<UniqueFd> OpenDirFd(absl::string_view path, int flags = O_RDONLY);
  std::string Absolute(absl::string_view path) const;

  const std::string root_;
  const UniqueFd root_fd_;
  const std::string fsid_;
  bool commit_before_listing_ = false;
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_REAL_VOLUME_FS_H_
