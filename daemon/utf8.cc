#include "daemon/utf8.h"

#include <cstdint>

#include "absl/strings/str_format.h"

namespace btrdupd {

size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len;
  uint32_t min;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  uint32_t cp = c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    const unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

bool IsC1Control(absl::string_view s, size_t i) {
  return i + 1 < s.size() && static_cast<unsigned char>(s[i]) == 0xC2 &&
         static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
         static_cast<unsigned char>(s[i + 1]) <= 0x9F;
}

std::string MapUtf8(absl::string_view text,
                    absl::FunctionRef<void(std::string& out, unsigned char c)> ascii,
                    absl::FunctionRef<void(std::string& out, unsigned char c)> bad_byte,
                    bool c1_is_bad) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ascii(out, c);
      ++i;
      continue;
    }
    const size_t n = Utf8SequenceLength(text, i);
    if (n == 0 || (c1_is_bad && IsC1Control(text, i))) {
      const size_t bad = n == 0 ? 1 : n;
      for (size_t k = 0; k < bad; ++k) bad_byte(out, static_cast<unsigned char>(text[i + k]));
      i += bad;
      continue;
    }
    out.append(text.data() + i, n);
    i += n;
  }
  return out;
}

void AppendHexEscape(std::string& out, unsigned char c) {
  absl::StrAppendFormat(&out, "\\x%02x", c);
}

std::string EscapeControlCharacters(absl::string_view text) {
  return MapUtf8(
      text,
      [](std::string& out, unsigned char c) {
        if (c == '\n') {
          out.append("\\n");
        } else if (c < 0x20 || c == 0x7f) {
          AppendHexEscape(out, c);
        } else {
          out.push_back(static_cast<char>(c));
        }
      },
      AppendHexEscape, /*c1_is_bad=*/true);
}

}  // namespace btrdupd
