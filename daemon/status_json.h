// The daemon's status reply: what it holds (DaemonStatus), how it is written as JSON,
// and a small JSON reader for the client (`btrdupd --daemon-status`) and the tests.
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

#ifndef BTRDUPD_DAEMON_STATUS_JSON_H_
#define BTRDUPD_DAEMON_STATUS_JSON_H_

#include <cstdint>
#include <map>
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

// --- What the daemon reports for one volume ---

// A file hashed over several units, as far as it got.
struct HashingStatus {
  std::string path;
  uint64_t bytes_done = 0;  // into the file (holes included)
  uint64_t size = 0;
};

struct DaemonStatus {
  int64_t pid = 0;
  absl::Duration uptime;
  std::string version;
  std::string volume;       // mount path
  std::string volume_name;  // as in the socket's file name
  std::string state;        // "ok", "failed" (retrying), "stopping"
  std::string activity;     // what the daemon does for this volume right now
  std::optional<HashingStatus> hashing;  // a large file part-way through its hash
  // Queues.
  bool scan_pending = false;      // a change check is due or running
  int64_t files_to_hash = 0;      // eligible, hash not yet complete
  int64_t files_to_dedupe = 0;    // hashed duplicates not yet deduped or verified
  int64_t files_waiting = 0;      // not yet eligible (stability wait / backoff)
  int64_t files_tracked = 0;
  int64_t duplicate_groups = 0;
  // Rates: files hashed or deduped, bytes read by hashing plus bytes newly shared.
  double files_per_second_last_minute = 0;
  double bytes_per_second_last_minute = 0;
  double files_per_second_since_start = 0;
  double bytes_per_second_since_start = 0;
  // Totals.
  int64_t files_deduped = 0;       // verified shared, from the database
  uint64_t bytes_shared = 0;       // size of the deduped files, from the database
  uint64_t bytes_freed = 0;        // space returned by all dedupes, from the database
  uint64_t bytes_saveable = 0;     // hashed duplicates not yet shared
  int64_t files_skipped = 0;       // left alone for good (from the database)
  std::map<std::string, int64_t> skipped_by_kind;  // SkipKindName -> files (database)
  std::map<std::string, int64_t> errors;  // kind -> count since start
  std::string last_error;          // the latest one, "" if none
  // Schedules.
  std::optional<absl::Time> last_full_scan;
  std::optional<absl::Time> last_incremental_scan;
  std::optional<absl::Time> next_full_scan;  // nullopt: none scheduled
  std::optional<absl::Time> next_change_check;
  std::optional<absl::Time> last_vacuum;
  std::optional<absl::Time> next_vacuum;
  std::optional<absl::Time> last_dedupe_reset;
  std::optional<absl::Time> next_dedupe_reset;
  int64_t database_bytes = 0;
};

// One line of JSON, no trailing newline.
std::string DaemonStatusToJson(const DaemonStatus& status);

// A reply that reports a bad request: {"error": "..."}.
std::string ErrorReplyJson(absl::string_view message);

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

#endif  // BTRDUPD_DAEMON_STATUS_JSON_H_
