#include "daemon/volume_name.h"

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace btrdupd {
namespace {

bool KeptAsIs(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == ':' || c == '_' || c == '.';
}

}  // namespace

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
  return name;
}

}  // namespace btrdupd
