// `btrdupd --status VOLUME...`: what each volume's database knows, for people.
//
// Reads the database only (no scan, no root needed beyond reading the database): files
// tracked, hashed, pending, duplicate groups, files and bytes deduped, bytes still
// saveable, files skipped, database size, and per subvolume its path, id, generation
// seen and last scan time. A volume without a database says so and how to make one.

#ifndef BTRDUPD_DAEMON_STATUS_REPORT_H_
#define BTRDUPD_DAEMON_STATUS_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/index.h"

namespace btrdupd {

// True when --status was given.
bool StatusRequested();

// The report for one volume from its statistics and subvolume rows.
std::string FormatStatusReport(absl::string_view volume, absl::string_view db_path,
                               const IndexStats& stats,
                               const std::vector<SubvolumeRecord>& subvolumes);

// Opens `volume`'s existing database (`db_dir` as for --db-path) and formats its report.
// NotFound when the volume has no database yet.
absl::StatusOr<std::string> VolumeStatusReport(absl::string_view volume,
                                               absl::string_view db_dir, absl::Time now);

// Prints the report of each volume on stdout; returns the exit code.
int RunStatus(const std::vector<std::string>& volumes, absl::string_view db_dir);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_STATUS_REPORT_H_
