// Paths inside a volume, as the index stores them: relative to the volume root, '/'
// between components, "" for the root itself. A subvolume's path is its directory's.

#ifndef BTRDUPD_CORE_RELATIVE_PATH_H_
#define BTRDUPD_CORE_RELATIVE_PATH_H_

#include <optional>
#include <string>

namespace btrdupd {

// `path` relative to `base` when it lies strictly below it ("a/b/c" below "a" is "b/c");
// every path lies below the root "". nullopt otherwise, `base` itself included.
std::optional<std::string> PathBelow(const std::string& path, const std::string& base);

// `dir` and `name` joined with one '/'; either may be "" (the root, or no name).
std::string JoinPath(const std::string& dir, const std::string& name);

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_RELATIVE_PATH_H_
