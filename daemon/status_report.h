// `btrdupd --status VOLUME...`: what each volume's database knows, for people.
//
// Reads the database only (no scan, no root needed beyond reading the database): files
// tracked, hashed, pending, duplicate groups, files deduped, bytes shared and freed,
// bytes still saveable, files skipped by kind (core/skip_kind.h) with the most recently
// skipped files of each kind, database size, and per subvolume its path, id, generation seen
// and last scan time. With --json: the same as one JSON object per volume and line
// (see VolumeStatusToJson). A volume without a database says so and how to make one.

#ifndef BTRDUPD_DAEMON_STATUS_REPORT_H_
#define BTRDUPD_DAEMON_STATUS_REPORT_H_

#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/index.h"

namespace btrdupd {

// True when --status was given.
bool StatusRequested();

// Files listed per skip kind: in the text report, and in the JSON one.
inline constexpr int kRecentSkipsShown = 3;
inline constexpr int kRecentSkipsInJson = 20;

// What one volume's database knows.
struct VolumeStatus {
  std::string volume;   // mount path
  std::string db_path;
  IndexStats stats;
  std::vector<SkipKindSummary> skipped;  // kinds with files, kRecentSkipsInJson each
  std::vector<SubvolumeRecord> subvolumes;
};

// The report for people (kRecentSkipsShown files per skip kind).
std::string FormatStatusReport(const VolumeStatus& status);

// One line of JSON: {"volume", "database", "database_bytes", "files_tracked",
// "files_hashed", "files_pending", "files_waiting", "duplicate_groups", "files_deduped",
// "files_skipped", "bytes_shared", "bytes_freed", "bytes_saveable", "skipped": [{"kind",
// "description", "files", "recent": [{"path", "detail", "skipped_at"}]}],
// "subvolumes": [{"id", "path", "generation", "last_scan", "read_only"}]}.
std::string VolumeStatusToJson(const VolumeStatus& status);

// Opens `volume`'s existing database (`db_dir` as for --db-dir) and reads its status.
// NotFound when the volume has no database yet.
absl::StatusOr<VolumeStatus> ReadVolumeStatus(absl::string_view volume,
                                              absl::string_view db_dir, absl::Time now);

// Prints the report of each volume on stdout (JSON with --json); returns the exit code.
int RunStatus(const std::vector<std::string>& volumes, absl::string_view db_dir);

// The loop of the read-only reports (--status, --explain): prints on stdout what
// `report` makes of each of `names`; a name it fails for is logged as an error and
// counted. Returns the exit code (ExitCodeFor over the names).
int PrintEach(const std::vector<std::string>& names,
              absl::FunctionRef<absl::StatusOr<std::string>(const std::string&)> report);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_STATUS_REPORT_H_
