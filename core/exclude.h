// ExcludeList: the `exclude` patterns of a volume's .btrdupd.conf, matched against
// paths relative to the volume root ("home/alice/.cache/x", no leading '/').
//
// Patterns are shell globs:
//   *      any run of characters within one path component (not '/')
//   ?      one character other than '/'
//   [...]  one character of a set: ranges (a-z), negation with ! or ^ first
//   **     any run of characters, '/' included ("var/lib/docker/**"); "**/" at the
//          start or after a '/' also matches no directory at all ("**/node_modules"
//          matches "node_modules" too)
//   \c     the character c itself
// A pattern without '/' is matched against the last component only, so it applies at
// any depth ("*.qcow2" excludes every .qcow2 file); one with '/' is matched against
// the whole relative path. A directory is excluded when its path matches, or its path
// followed by '/' does ("var/lib/docker/**", "build/"): it is then never opened, and
// nothing below it is indexed.
//
// Parse() checks each pattern: not empty, not starting with '/', brackets closed, no
// trailing lone backslash; an error names the pattern and what is wrong.
//
// Thread-compatible; matching is pure.

#ifndef BTRDUPD_CORE_EXCLUDE_H_
#define BTRDUPD_CORE_EXCLUDE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace btrdupd {

class ExcludeList {
 public:
  ExcludeList() = default;

  // InvalidArgument naming the first bad pattern.
  static absl::StatusOr<ExcludeList> Parse(const std::vector<std::string>& patterns);

  // True when some pattern matches the regular file at `path`.
  bool ExcludesFile(absl::string_view path) const;
  // True when some pattern matches the directory at `path` (see above).
  bool ExcludesDir(absl::string_view path) const;

  bool empty() const { return patterns_.empty(); }

 private:
  std::vector<std::string> patterns_;
};

// Whether the glob `pattern` matches all of `text` (the rules above, without the
// last-component rule). Exposed for tests.
bool GlobMatch(absl::string_view pattern, absl::string_view text);

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_EXCLUDE_H_
