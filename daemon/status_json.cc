#include "daemon/status_json.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"

namespace btrdupd {

namespace {

// "name": {"files_per_second": f, "bytes_per_second": b}
void WriteRate(JsonWriter& w, absl::string_view name, double files, double bytes) {
  w.Key(name).BeginObject();
  w.Key("files_per_second").Double(files);
  w.Key("bytes_per_second").Double(bytes);
  w.EndObject();
}

// "name": {"<kind>": count, ...}
void WriteCounts(JsonWriter& w, absl::string_view name,
                 const std::map<std::string, int64_t>& counts) {
  w.Key(name).BeginObject();
  for (const auto& [kind, count] : counts) w.Key(kind).Int(count);
  w.EndObject();
}

}  // namespace

std::string DaemonStatusToJson(const DaemonStatus& s) {
  JsonWriter w;
  w.BeginObject();
  w.Key("pid").Int(s.pid);
  w.Key("uptime_seconds").Int(absl::ToInt64Seconds(s.uptime));
  w.Key("version").String(s.version);
  w.Key("volume").String(s.volume);
  w.Key("volume_name").String(s.volume_name);
  w.Key("state").String(s.state);
  w.Key("activity").String(s.activity);
  if (s.hashing.has_value()) {
    w.Key("hashing").BeginObject();
    w.Key("path").String(s.hashing->path);
    w.Key("bytes_done").Uint(s.hashing->bytes_done);
    w.Key("size").Uint(s.hashing->size);
    w.EndObject();
  }
  w.Key("queues").BeginObject();
  w.Key("scan_pending").Bool(s.scan_pending);
  w.Key("files_to_hash").Int(s.files_to_hash);
  w.Key("files_to_dedupe").Int(s.files_to_dedupe);
  w.Key("files_waiting").Int(s.database.files_waiting);
  w.EndObject();
  w.Key("files_tracked").Int(s.database.files_tracked);
  w.Key("duplicate_groups").Int(s.database.duplicate_groups);
  w.Key("rate").BeginObject();
  WriteRate(w, "last_minute", s.files_per_second_last_minute, s.bytes_per_second_last_minute);
  WriteRate(w, "since_start", s.files_per_second_since_start, s.bytes_per_second_since_start);
  w.EndObject();
  w.Key("files_deduped").Int(s.database.files_deduped);
  w.Key("bytes_shared").Uint(s.database.bytes_deduped);
  w.Key("bytes_freed").Uint(s.database.bytes_freed);
  w.Key("bytes_saveable").Uint(s.database.bytes_saveable);
  w.Key("files_skipped").Int(s.database.files_skipped);
  WriteCounts(w, "skipped_by_kind", s.skipped_by_kind);
  WriteCounts(w, "errors", s.errors);
  w.Key("last_error").String(s.last_error);
  w.Key("last_full_scan").OptionalTime(s.last_full_scan);
  w.Key("last_incremental_scan").OptionalTime(s.last_incremental_scan);
  w.Key("next_full_scan").OptionalTime(s.next_full_scan);
  w.Key("next_change_check").OptionalTime(s.next_change_check);
  w.Key("last_vacuum").OptionalTime(s.last_vacuum);
  w.Key("next_vacuum").OptionalTime(s.next_vacuum);
  w.Key("last_dedupe_reset").OptionalTime(s.last_dedupe_reset);
  w.Key("next_dedupe_reset").OptionalTime(s.next_dedupe_reset);
  w.Key("database_bytes").Int(s.database.database_bytes);
  w.EndObject();
  return w.str();
}

std::string ErrorReplyJson(absl::string_view message) {
  JsonWriter w;
  w.BeginObject().Key("error").String(message).EndObject();
  return w.str();
}

}  // namespace btrdupd
