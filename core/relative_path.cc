#include "core/relative_path.h"

#include "absl/strings/str_cat.h"

namespace btrdupd {

std::optional<std::string> PathBelow(const std::string& path, const std::string& base) {
  if (base.empty()) return path;
  if (path.size() > base.size() && path.compare(0, base.size(), base) == 0 &&
      path[base.size()] == '/') {
    return path.substr(base.size() + 1);
  }
  return std::nullopt;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (name.empty()) return dir;
  return absl::StrCat(dir, "/", name);
}

}  // namespace btrdupd
