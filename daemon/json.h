// JSON for the daemon's replies, the run report and the client: a writer that always
// produces valid JSON, and a small reader.
//
// Writer contract: the output is one line of valid JSON (RFC 8259) whatever bytes the
// strings hold. Paths on Linux are bytes, not text: valid UTF-8 passes through, control
// characters, '"' and '\' are escaped, and each byte that is not part of valid UTF-8
// becomes U+FFFD, so a file name with invalid UTF-8 never breaks the reply (the name is
// then shown approximately; the reply is for people and monitoring, not for finding
// files). Times are RFC 3339 UTC strings, or null for "never"/"not scheduled".
// Non-finite doubles are written as null.
//
// Reader contract: ParseJson accepts exactly one JSON value (objects, arrays, strings
// with escapes incl. surrogate pairs, numbers, true/false/null) surrounded by optional
// whitespace, nesting at most 64 deep; anything else is InvalidArgument with the byte
// offset.

#ifndef BTRDUPD_DAEMON_JSON_H_
#define BTRDUPD_DAEMON_JSON_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace btrdupd {

// --- Writing ---

// `bytes` as a quoted JSON string (see the contract above).
std::string JsonQuote(absl::string_view bytes);

// Builds one JSON text; commas and nesting are handled here. Misuse (a value where a
// key is expected) is a programming error and not checked beyond debug asserts.
class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(absl::string_view key);
  JsonWriter& String(absl::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // RFC 3339 UTC ("2026-11-26T06:00:00Z"); null for InfinitePast/InfiniteFuture.
  JsonWriter& Time(absl::Time value);
  JsonWriter& OptionalTime(const std::optional<absl::Time>& value);
  // An array of strings.
  JsonWriter& Strings(const std::vector<std::string>& values);
  // An array with one object per item; write_keys(item) writes that object's keys.
  template <typename Items, typename WriteKeys>
  JsonWriter& Objects(const Items& items, WriteKeys write_keys) {
    BeginArray();
    for (const auto& item : items) {
      BeginObject();
      write_keys(item);
      EndObject();
    }
    return EndArray();
  }

  const std::string& str() const { return out_; }

 private:
  void BeforeValue();
  // Opens or closes an object or array ('{' '}' or '[' ']').
  JsonWriter& Open(char bracket);
  JsonWriter& Close(char bracket);

  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

// --- Reading ---

struct JsonValue {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> array;
  std::vector<std::pair<std::string, JsonValue>> object;  // in document order

  // The member `key` of an object, or nullptr (also when this is not an object).
  const JsonValue* Find(absl::string_view key) const;
};

absl::StatusOr<JsonValue> ParseJson(absl::string_view text);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_JSON_H_
