// Metrics for a fleet: `--metrics-file=PATH` writes the Prometheus text exposition
// format (version 0.0.4), for node_exporter's textfile collector.
//
// One VolumeMetrics per volume, every series labelled volume="<mount path>":
//   btrdupd_up                              gauge    1 if the volume was processed/served
//   btrdupd_deduped_files_total             counter  files newly shared, since the
//   btrdupd_deduped_bytes_total             counter  database was made ("shared" bytes)
//   btrdupd_freed_bytes_total               counter  space those dedupes returned ("freed")
//   btrdupd_saveable_bytes                  gauge    hashed duplicates not yet shared
//   btrdupd_files_tracked                   gauge    files in the index
//   btrdupd_files_waiting                   gauge    files in their stability wait
//   btrdupd_files_skipped                   gauge    files whose dedupe was refused
//   btrdupd_skipped_files{kind}             gauge    of those, per kind (core/skip_kind.h)
//   btrdupd_last_full_scan_timestamp_seconds gauge   (absent before the first)
//   btrdupd_errors_total{kind}              counter  errors by kind (see below)
//   btrdupd_database_bytes                  gauge
//   btrdupd_last_run_timestamp_seconds      gauge    when this file's figures were taken
// Counters come from the database (they survive restarts and one-shot runs), except
// errors_total: since the daemon started, or of the one-shot run that wrote the file.
//
// WriteMetricsFile() writes atomically: a temporary file in the same directory, then
// rename(2), so the collector never reads half a file. Mode 0644.

#ifndef BTRDUPD_DAEMON_METRICS_H_
#define BTRDUPD_DAEMON_METRICS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace btrdupd {

struct VolumeMetrics {
  std::string volume;  // the label value: mount path
  bool up = false;
  uint64_t deduped_files_total = 0;
  uint64_t deduped_bytes_total = 0;
  uint64_t freed_bytes_total = 0;  // IndexStats::bytes_freed (core/freed_space.h)
  uint64_t saveable_bytes = 0;
  int64_t files_tracked = 0;
  int64_t files_waiting = 0;
  int64_t files_skipped = 0;
  std::map<std::string, int64_t> skipped_by_kind;
  std::optional<absl::Time> last_full_scan;
  std::map<std::string, int64_t> errors;  // kind -> count
  int64_t database_bytes = 0;
  absl::Time taken = absl::InfinitePast();
};

// The exposition text for `volumes` (each family once, with HELP and TYPE).
std::string FormatMetrics(const std::vector<VolumeMetrics>& volumes);

// Writes `text` to `path` atomically (temporary file + rename). Errors name the path.
absl::Status WriteMetricsFile(const std::string& path, absl::string_view text);

// The --metrics-file flag: "" when not given.
std::string MetricsFileFromFlags();

class VolumeIndex;    // core/index.h
class VolumeSession;  // daemon/volume_session.h

// The files skipped, per kind, keyed by its name (core/skip_kind.h: SkipKindName): the
// metrics' skipped_by_kind and the daemon status reply's.
absl::StatusOr<std::map<std::string, int64_t>> SkippedFilesByKindName(VolumeIndex& index);

// The figures of an open volume at `now` (up = true; errors left to the caller): one
// pass over the index (VolumeIndex::Stats) and a few metadata reads.
absl::StatusOr<VolumeMetrics> MetricsOfSession(VolumeSession& session, absl::Time now);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_METRICS_H_
