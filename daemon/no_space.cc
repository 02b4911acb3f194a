#include "daemon/no_space.h"

#include <sys/statvfs.h>

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace btrdupd {
namespace {

// Below this many available bytes a filesystem counts as full (btrfs reports 0 once its
// data space is used up).
constexpr uint64_t kFullBelow = uint64_t{1} << 20;

// True when statvfs says `path` is on a filesystem with (next to) no space available;
// false also when it cannot tell.
bool LooksFull(const std::string& path) {
  struct statvfs vfs;
  if (statvfs(path.c_str(), &vfs) != 0) return false;
  return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize < kFullBelow;
}

std::string DirectoryOf(absl::string_view file) {
  const size_t slash = file.rfind('/');
  if (slash == absl::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(file.substr(0, slash));
}

}  // namespace

std::string NoSpaceAdvice(absl::string_view volume_path, absl::string_view db_path) {
  const std::string volume(volume_path);
  const std::string db_dir = db_path.empty() ? volume : DirectoryOf(db_path);
  // The database is inside the volume (the default): one filesystem to name.
  const bool same = db_path.empty() || db_dir == volume ||
                    db_dir.rfind(absl::StrCat(volume, "/"), 0) == 0;
  std::vector<std::string> full;
  if (same) {
    full.push_back(volume);
  } else {
    if (LooksFull(volume)) full.push_back(volume);
    if (LooksFull(db_dir)) full.push_back(absl::StrCat(db_dir, " (which holds its database)"));
    if (full.empty()) {  // neither looks full: metadata space; name both
      full.push_back(volume);
      full.push_back(absl::StrCat(db_dir, " (which holds its database)"));
    }
  }
  return absl::StrCat("no space left on ", absl::StrJoin(full, " or on "),
                      ": free some space there and run btrdupd again; nothing half-done "
                      "was recorded, and the next run goes on from here");
}

}  // namespace btrdupd
