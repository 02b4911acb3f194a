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
// The duperemove backend gets its files from OpenForRead() and passes them to the
// child as /proc/self/fd/N (inherited descriptors), never as paths a user could swap.
//
// Thread-compatible: one processing thread per volume.

#ifndef BTRDUPD_DAEMON_FILE_OPENER_H_
#define BTRDUPD_DAEMON_FILE_OPENER_H_

#include <functional>
#include <memory>
#include <string>

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

 private:
  FileOpener(std::string root, UniqueFd root_fd, Options options)
      : root_(std::move(root)), root_fd_(std::move(root_fd)), options_(std::move(options)) {}

  // OpenSubvolume without the "is the root" check done twice; `display` for messages.
  absl::StatusOr<UniqueFd> OpenSubvolumeRoot(uint64_t id, const std::string& path,
                                             const std::string& display);

  const std::string root_;
  const UniqueFd root_fd_;
  const Options options_;
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_FILE_OPENER_H_
