// FileRef / SubvolumeRef (core/file_access.h) for files of a real mounted btrfs, as the
// dedupe engine would build them from its index: the subvolume a path lies in (found
// by walking up to the nearest subvolume root), its id, and the file's inode.
//
// Test-only. Fails the calling test (ADD_FAILURE) and returns a ref naming nothing
// when the path cannot be looked at.

#ifndef BTRDUPD_TESTS_TESTING_FILE_REFS_H_
#define BTRDUPD_TESTS_TESTING_FILE_REFS_H_

#include <string>

#include "core/file_access.h"

namespace btrdupd {
namespace testing {

// `relative` below the volume mounted at `root`.
FileRef RefFor(const std::string& root, const std::string& relative);

// The subvolume whose root is `relative` ("" = the volume root).
SubvolumeRef SubvolRefFor(const std::string& root, const std::string& relative);

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_FILE_REFS_H_
