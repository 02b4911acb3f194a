#include "tests/testing/file_refs.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "ioctl/subvolumes.h"

namespace btrdupd {
namespace testing {
namespace {

std::string Join(const std::string& root, const std::string& relative) {
  return relative.empty() ? root : absl::StrCat(root, "/", relative);
}

// The nearest directory at or above `relative` that is a subvolume root.
std::string SubvolumeRootOf(const std::string& root, std::string relative) {
  while (!relative.empty()) {
    struct stat st;
    if (lstat(Join(root, relative).c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
        st.st_ino == 256) {
      return relative;
    }
    const size_t slash = relative.rfind('/');
    relative = slash == std::string::npos ? "" : relative.substr(0, slash);
  }
  return "";
}

}  // namespace

SubvolumeRef SubvolRefFor(const std::string& root, const std::string& relative) {
  SubvolumeRef ref;
  ref.path = relative;
  ref.display = Join(root, relative);
  absl::StatusOr<SubvolumeInfo> info = GetSubvolumeInfo(ref.display);
  if (!info.ok()) {
    ADD_FAILURE() << info.status();
    return ref;
  }
  ref.id = info->id;
  return ref;
}

FileRef RefFor(const std::string& root, const std::string& relative) {
  FileRef ref;
  ref.path = relative;
  ref.display = Join(root, relative);
  struct stat st;
  if (lstat(ref.display.c_str(), &st) == 0) ref.ino = st.st_ino;  // else: a missing file
  const size_t slash = relative.rfind('/');
  ref.subvol_path = SubvolumeRootOf(root, slash == std::string::npos ? "" : relative.substr(0, slash));
  ref.subvol_id = SubvolRefFor(root, ref.subvol_path).id;
  return ref;
}

}  // namespace testing
}  // namespace btrdupd
