#include "daemon/volume_name.h"

#include <cstdint>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/sha256.h"

namespace btrdupd {
namespace {

bool KeptAsIs(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == ':' || c == '_' || c == '.';
}

// 16 hex digits identifying `name`: the start of its SHA-256; FNV-1a (64 bits) only if
// OpenSSL cannot compute a digest at all.
std::string ShortHash(absl::string_view name) {
  absl::StatusOr<std::string> digest = Sha256::Of(name);
  if (digest.ok()) return absl::BytesToHexString(digest->substr(0, 8));
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return absl::StrFormat("%016x", h);
}

}  // namespace

std::string ShortenName(absl::string_view name, size_t max_bytes) {
  if (name.size() <= max_bytes) return std::string(name);
  const size_t room = max_bytes > kMinShortNameBytes ? max_bytes - kMinShortNameBytes : 0;
  // Whole characters only: an escape is the four bytes `\xNN`.
  size_t cut = 0;
  while (cut < name.size()) {
    const size_t step = name[cut] == '\\' ? 4 : 1;
    if (cut + step > room) break;
    cut += step;
  }
  return absl::StrCat(name.substr(0, cut), "~", ShortHash(name));
}

std::string VolumeNameForPath(absl::string_view absolute_path) {
  std::string name;
  for (absl::string_view part : absl::StrSplit(absolute_path, '/', absl::SkipEmpty())) {
    if (!name.empty()) name.push_back('-');
    for (size_t i = 0; i < part.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(part[i]);
      const bool leading_dot = name.empty() && i == 0 && c == '.';
      if (KeptAsIs(c) && !leading_dot) {
        name.push_back(static_cast<char>(c));
      } else {
        absl::StrAppendFormat(&name, "\\x%02x", c);
      }
    }
  }
  if (name.empty()) return "-";
  return ShortenName(name, kMaxVolumeNameBytes);
}

}  // namespace btrdupd
