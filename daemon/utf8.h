// UTF-8 validation for what btrdupd prints: paths are bytes, and log lines, the status
// report and the JSON status reply show valid UTF-8 as it is and escape the rest.

#ifndef BTRDUPD_DAEMON_UTF8_H_
#define BTRDUPD_DAEMON_UTF8_H_

#include <cstddef>

#include <string>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"

namespace btrdupd {

// Length (1-4) of the valid UTF-8 sequence starting at s[i], or 0 if there is none
// there (a stray continuation byte, a truncated or overlong sequence, a surrogate, or a
// code point above U+10FFFF). REQUIRES: i < s.size().
size_t Utf8SequenceLength(absl::string_view s, size_t i);

// True for the 2-byte UTF-8 sequence of a C1 control (U+0080-U+009F; U+009B is a
// terminal's CSI) starting at s[i]. REQUIRES: i < s.size().
bool IsC1Control(absl::string_view s, size_t i);

// Copies `text` to a new string, walking it as UTF-8: each ASCII byte goes through
// `ascii` (which appends what stands for it), each valid multi-byte sequence is kept as
// it is, and each byte of an invalid sequence goes through `bad_byte`. With
// `c1_is_bad`, the bytes of a C1 control's sequence count as bad too.
std::string MapUtf8(absl::string_view text,
                    absl::FunctionRef<void(std::string& out, unsigned char c)> ascii,
                    absl::FunctionRef<void(std::string& out, unsigned char c)> bad_byte,
                    bool c1_is_bad);

// Appends "\xNN" for the byte `c`.
void AppendHexEscape(std::string& out, unsigned char c);

// `text` safe for a terminal or a log: control characters (C0, DEL, C1) and bytes that
// are not valid UTF-8 become "\xNN" (a newline "\n"), so a file name holding terminal
// escapes never reaches the terminal raw. Everything else, backslashes included, is
// kept (unlike PrintablePath, it is not meant to be reversible). Every log line goes
// through it (daemon/log.h).
std::string EscapeControlCharacters(absl::string_view text);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_UTF8_H_
