// The daemon's status reply: what it holds (DaemonStatus) and how it is written as JSON
// (daemon/json.h, which this header brings along for the writer and the reader).

#ifndef BTRDUPD_DAEMON_STATUS_JSON_H_
#define BTRDUPD_DAEMON_STATUS_JSON_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/index.h"
#include "daemon/json.h"

namespace btrdupd {

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
  // The database's figures (VolumeIndex::Stats), written under their own names but for
  // files_waiting (among the queues) and bytes_deduped ("bytes_shared").
  IndexStats database;
  // Rates: files hashed or deduped, bytes read by hashing plus bytes newly shared.
  double files_per_second_last_minute = 0;
  double bytes_per_second_last_minute = 0;
  double files_per_second_since_start = 0;
  double bytes_per_second_since_start = 0;
  // Totals.
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
};

// One line of JSON, no trailing newline.
std::string DaemonStatusToJson(const DaemonStatus& status);

// A reply that reports a bad request: {"error": "..."}.
std::string ErrorReplyJson(absl::string_view message);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_STATUS_JSON_H_
