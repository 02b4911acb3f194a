#include "core/exclude.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace btrdupd {
namespace {

// Matches a [...] set at the start of `pattern` (which begins with '[') against `c`.
// Returns the length of the set in the pattern, 0 if it is not closed.
size_t MatchSet(absl::string_view pattern, char c, bool* matched) {
  size_t i = 1;
  bool negate = false;
  if (i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^')) {
    negate = true;
    ++i;
  }
  bool found = false;
  bool first = true;
  while (i < pattern.size() && (first || pattern[i] != ']')) {
    first = false;
    char lo = pattern[i];
    if (lo == '\\' && i + 1 < pattern.size()) lo = pattern[++i];
    char hi = lo;
    if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
      hi = pattern[i + 2];
      if (hi == '\\' && i + 3 < pattern.size()) {
        hi = pattern[i + 3];
        ++i;
      }
      i += 2;
    }
    if (static_cast<unsigned char>(c) >= static_cast<unsigned char>(lo) &&
        static_cast<unsigned char>(c) <= static_cast<unsigned char>(hi)) {
      found = true;
    }
    ++i;
  }
  if (i >= pattern.size()) return 0;
  *matched = (found != negate) && c != '/';
  return i + 1;
}

bool LastComponentRule(absl::string_view pattern) {
  return pattern.find('/') == absl::string_view::npos;
}

absl::string_view LastComponent(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

bool MatchPattern(absl::string_view pattern, absl::string_view path) {
  if (LastComponentRule(pattern)) return GlobMatch(pattern, LastComponent(path));
  return GlobMatch(pattern, path);
}

}  // namespace

bool GlobMatch(absl::string_view p, absl::string_view s) {
  while (!p.empty()) {
    if (p.size() >= 2 && p[0] == '*' && p[1] == '*') {
      absl::string_view rest = p.substr(2);
      while (!rest.empty() && rest[0] == '*') rest.remove_prefix(1);
      if (!rest.empty() && rest[0] == '/' && GlobMatch(rest.substr(1), s)) return true;
      for (size_t i = 0; i <= s.size(); ++i) {
        if (GlobMatch(rest, s.substr(i))) return true;
      }
      return false;
    }
    switch (p[0]) {
      case '*': {
        absl::string_view rest = p.substr(1);
        for (size_t i = 0; i <= s.size(); ++i) {
          if (GlobMatch(rest, s.substr(i))) return true;
          if (i < s.size() && s[i] == '/') break;
        }
        return false;
      }
      case '?':
        if (s.empty() || s[0] == '/') return false;
        p.remove_prefix(1);
        s.remove_prefix(1);
        continue;
      case '[': {
        if (s.empty()) return false;
        bool matched = false;
        const size_t n = MatchSet(p, s[0], &matched);
        if (n == 0) {  // not a set: a literal '['
          if (s[0] != '[') return false;
          p.remove_prefix(1);
        } else {
          if (!matched) return false;
          p.remove_prefix(n);
        }
        s.remove_prefix(1);
        continue;
      }
      case '\\':
        if (p.size() >= 2) p.remove_prefix(1);
        [[fallthrough]];
      default:
        if (s.empty() || s[0] != p[0]) return false;
        p.remove_prefix(1);
        s.remove_prefix(1);
        continue;
    }
  }
  return s.empty();
}

absl::StatusOr<ExcludeList> ExcludeList::Parse(const std::vector<std::string>& patterns) {
  ExcludeList list;
  for (const std::string& pattern : patterns) {
    auto bad = [&pattern](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("exclude pattern \"", pattern, "\": ", why));
    };
    if (pattern.empty()) return bad("empty (two commas in a row?)");
    if (pattern[0] == '/') {
      return bad("patterns are relative to the volume root; drop the leading '/'");
    }
    size_t backslashes = 0;
    for (size_t i = pattern.size(); i > 0 && pattern[i - 1] == '\\'; --i) ++backslashes;
    if (backslashes % 2 == 1) return bad("ends with a lone backslash");
    for (size_t i = 0; i < pattern.size(); ++i) {
      if (pattern[i] == '\\') {
        ++i;
        continue;
      }
      if (pattern[i] == '[') {
        bool ignored = false;
        const size_t n = MatchSet(absl::string_view(pattern).substr(i), 'x', &ignored);
        if (n == 0) return bad("'[' without its closing ']'");
        i += n - 1;
      }
    }
    list.patterns_.push_back(pattern);
  }
  return list;
}

bool ExcludeList::ExcludesFile(absl::string_view path) const {
  for (const std::string& pattern : patterns_) {
    if (MatchPattern(pattern, path)) return true;
  }
  return false;
}

bool ExcludeList::ExcludesDir(absl::string_view path) const {
  const std::string with_slash = absl::StrCat(path, "/");
  for (const std::string& pattern : patterns_) {
    if (MatchPattern(pattern, path)) return true;
    if (!LastComponentRule(pattern) && GlobMatch(pattern, with_slash)) return true;
  }
  return false;
}

}  // namespace btrdupd
