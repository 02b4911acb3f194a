// UTF-8 validation for what btrdupd prints: paths are bytes, and log lines, the status
// report and the JSON status reply show valid UTF-8 as it is and escape the rest.

#ifndef BTRDUPD_DAEMON_UTF8_H_
#define BTRDUPD_DAEMON_UTF8_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace btrdupd {

// Length (1-4) of the valid UTF-8 sequence starting at s[i], or 0 if there is none
// there (a stray continuation byte, a truncated or overlong sequence, a surrogate, or a
// code point above U+10FFFF). REQUIRES: i < s.size().
size_t Utf8SequenceLength(absl::string_view s, size_t i);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_UTF8_H_
