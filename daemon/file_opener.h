// FileOpener: the one way btrdupd opens a file or a subvolume of a volume after the scan.
//
// btrdupd runs as root over trees that users change at will, so a path from the index
// is only a hint. FileOpener holds a descriptor of the volume root (opened once, when
// the volume is opened) and resolves every FileRef / SubvolumeRef (core/file_access.h)
// from it:
//  1. The paths are checked first: relative, no empty, "." or ".." component
//     (InvalidArgument: a database that holds one is refused, not followed).
//  2. The subvolume root is opened beneath the volume root (ioctl/open_beneath.h: no
//     symlink in any component, no mount crossed, never above the root), as a directory,
//     and its subvolume id must be the ref's, its inode the subvolume root's.
//  3. The file is opened O_PATH beneath that subvolume root, the same way, and fstat
//     must show a regular file on the subvolume's device (not in a nested subvolume)
//     with the ref's inode number.
//  4. Only then is it opened for reading, through the O_PATH descriptor (no path is
//     resolved again): a FIFO, device or socket put in a file's place is never opened.
// Any mismatch is Aborted (core/file_access.h: the tree changed since the scan; the
// caller sends the file back to the scanner); a missing component is NotFound. Error
// messages name the ref's display path.
//
// While a KeepRoots() guard lives (the session holds one for each engine step), the
// subvolume root of step 2 is kept open for the files resolved within a second of its
// check (a hash and a dedupe touch each file several times; the check costs five
// syscalls). What identifies a file is its subvolume id and inode, and a kept root is
// that subvolume's root whatever was renamed since: a file is still resolved beneath
// it, with every check of step 3. The guard's end closes the kept roots, so a subvolume
// deleted meanwhile is not held open while the daemon waits (`btrfs subvolume sync`
// waits for the last descriptor). Without a guard nothing is kept. OpenSubvolume()
// (flags, read-only flips) always checks anew.
//
// Under a guard, OpenForRead() also keeps each file it opened (its read descriptor,
// checked as in steps 1-4) for up to a second, and answers the next OpenForRead() of the
// same ref (subvolume, path, inode) with a duplicate of it: one syscall instead of six,
// for a file the engine's step opens to read its attributes, hash it, compare its
// extents, dedupe it and verify it. The duplicate shares the file offset and flags with
// the kept one: callers read with pread (no shared offset). The kept descriptor is the
// inode the check found, so whatever was renamed since, it is still that file and never
// one put in its place. The guard's end closes them.
//
// The duperemove backend gets its files from OpenForRead() and passes them to the
// child as /proc/self/fd/N (inherited descriptors), never as paths a user could swap.
//
// Thread-safe (the kept subvolume roots are guarded); meant for one processing thread
// per volume.

#ifndef BTRDUPD_DAEMON_FILE_OPENER_H_
#define BTRDUPD_DAEMON_FILE_OPENER_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/file_access.h"
#include "ioctl/open_beneath.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {

class FileOpener {
 public:
  struct Options {
    // kWalk forces the resolution kernels before 5.6 get (for tests).
    ResolveMethod method = ResolveMethod::kAuto;
    // Called before each file is resolved (tests change the tree at that moment).
    std::function<void(const FileRef&)> before_open;
  };

  // Opens the directory `root` (an absolute, canonical path: the volume root).
  static absl::StatusOr<std::unique_ptr<FileOpener>> Open(const std::string& root,
                                                          Options options);
  static absl::StatusOr<std::unique_ptr<FileOpener>> Open(const std::string& root) {
    return Open(root, Options());
  }

  FileOpener(const FileOpener&) = delete;
  FileOpener& operator=(const FileOpener&) = delete;

  const std::string& root() const { return root_; }

  // An O_PATH descriptor of `file`, checked as in steps 1-3 above.
  absl::StatusOr<UniqueFd> OpenPath(const FileRef& file);

  // `file` opened O_RDONLY | O_NONBLOCK (and O_NOATIME where permitted) after the checks.
  absl::StatusOr<UniqueFd> OpenForRead(const FileRef& file);

  // The root directory of `subvol`, opened O_RDONLY | O_DIRECTORY, its id checked.
  absl::StatusOr<UniqueFd> OpenSubvolume(const SubvolumeRef& subvol);

  // Subvolume roots are kept while the returned guard lives (see the file comment);
  // guards nest.
  class RootKeeper {
   public:
    explicit RootKeeper(FileOpener* opener) : opener_(opener) {}
    RootKeeper(RootKeeper&& other) noexcept : opener_(other.opener_) { other.opener_ = nullptr; }
    RootKeeper(const RootKeeper&) = delete;
    RootKeeper& operator=(const RootKeeper&) = delete;
    RootKeeper& operator=(RootKeeper&&) = delete;
    ~RootKeeper() {
      if (opener_ != nullptr) opener_->EndKeep();
    }

   private:
    FileOpener* opener_;
  };
  [[nodiscard]] RootKeeper KeepRoots();

 private:
  FileOpener(std::string root, UniqueFd root_fd, Options options)
      : root_(std::move(root)), root_fd_(std::move(root_fd)), options_(std::move(options)) {}

  // OpenSubvolume without the "is the root" check done twice; `display` for messages.
  absl::StatusOr<UniqueFd> OpenSubvolumeRoot(uint64_t id, const std::string& path,
                                             const std::string& display);

  // A subvolume root checked less than a second ago (see the file comment).
  struct KeptRoot {
    uint64_t id = 0;
    std::string path;
    UniqueFd fd;
    dev_t dev = 0;
    int64_t checked_ns = 0;
  };
  // The root of the file's subvolume, checked (a kept one or anew), and its st_dev. The
  // descriptor stays owned by the opener (valid while kept_mu_ is held).
  struct RootFd {
    int fd = -1;
    dev_t dev = 0;
  };
  absl::StatusOr<RootFd> SubvolumeRootOf(const FileRef& file);
  // A guard ended: the last one closes the kept roots.
  void EndKeep();

  const std::string root_;
  const UniqueFd root_fd_;
  const Options options_;
  std::mutex kept_mu_;
  std::vector<KeptRoot> kept_;  // a few: one per subvolume touched in the last second
  // Files opened for reading under a guard (see the file comment), oldest first.
  struct KeptFile {
    uint64_t subvol_id = 0;
    std::string subvol_path;
    std::string path;
    uint64_t ino = 0;
    UniqueFd fd;
    int64_t checked_ns = 0;
  };
  std::vector<KeptFile> kept_files_;
  int keepers_ = 0;             // RootKeeper guards alive
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_FILE_OPENER_H_
