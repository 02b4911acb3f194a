#include "daemon/status_report.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "daemon/exit_codes.h"
#include "daemon/log.h"
#include "daemon/one_shot.h"
#include "daemon/progress.h"
#include "daemon/volume_session.h"
#include "ioctl/errno_status.h"

ABSL_FLAG(bool, status, false,
          "Print what each VOLUME's database knows (files tracked, hashed, pending,\n"
          "duplicate groups, bytes deduped and still saveable, last scan and generation\n"
          "per subvolume) and exit. Scans nothing and changes nothing.");

namespace btrdupd {
namespace {

std::string Bytes(uint64_t bytes) {
  return absl::StrCat(HumanBytes(bytes), " (", bytes, " bytes)");
}

std::string When(absl::Time t) {
  if (t == absl::InfinitePast()) return "never";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", t, absl::LocalTimeZone());
}

}  // namespace

bool StatusRequested() { return absl::GetFlag(FLAGS_status); }

std::string FormatStatusReport(absl::string_view volume, absl::string_view db_path,
                               const IndexStats& stats,
                               const std::vector<SubvolumeRecord>& subvolumes) {
  std::string text = absl::StrCat(volume, "\n");
  auto row = [&text](absl::string_view label, const std::string& value) {
    absl::StrAppendFormat(&text, "  %-22s %s\n", absl::StrCat(label, ":"), value);
  };
  row("database", absl::StrCat(PrintablePath(db_path), ", ",
                               HumanBytes(static_cast<uint64_t>(stats.database_bytes))));
  row("files tracked", absl::StrCat(stats.files_tracked));
  row("files hashed", absl::StrCat(stats.files_hashed));
  row("files pending", absl::StrCat(stats.files_pending));
  row("duplicate groups", absl::StrCat(stats.duplicate_groups));
  row("files deduped", absl::StrCat(stats.files_deduped));
  row("files skipped", absl::StrCat(stats.files_skipped));
  row("bytes deduped", Bytes(stats.bytes_deduped));
  row("bytes still saveable", Bytes(stats.bytes_saveable));
  absl::StrAppendFormat(&text, "  subvolumes: %d\n", subvolumes.size());
  absl::StrAppendFormat(&text, "    %-8s %-12s %-25s %-3s %s\n", "ID", "GENERATION",
                        "LAST SCAN", "RO", "PATH");
  for (const SubvolumeRecord& subvol : subvolumes) {
    absl::StrAppendFormat(&text, "    %-8d %-12d %-25s %-3s %s\n", subvol.id,
                          subvol.last_generation, When(subvol.last_scan),
                          subvol.read_only ? "yes" : "no",
                          subvol.path.empty() ? "/" : PrintablePath(subvol.path));
  }
  return text;
}

absl::StatusOr<std::string> VolumeStatusReport(absl::string_view volume,
                                               absl::string_view db_dir, absl::Time now) {
  absl::StatusOr<VolumeLocation> location = ResolveVolume(volume, db_dir);
  if (!location.ok()) return location.status();
  struct stat st;
  if (stat(location->db_path.c_str(), &st) != 0) {
    const int err = errno;
    if (err != ENOENT) {
      return ErrnoToStatusWithMessage(
          err,
          absl::StrCat("cannot read the database ", location->db_path, ": ",
                       std::strerror(err),
                       err == EACCES ? " (run btrdupd --status as root)" : ""));
    }
    return absl::NotFoundError(absl::StrCat(
        "no database at ", location->db_path,
        ": btrdupd has not run on this volume yet (run 'btrdupd ", location->path,
        "' first", db_dir.empty() ? "" : absl::StrCat(" with --db-path=", db_dir), ")"));
  }
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(location->db_path);
  if (!index.ok()) return index.status();
  absl::StatusOr<IndexStats> stats = (*index)->Stats(now);
  if (!stats.ok()) return stats.status();
  absl::StatusOr<std::vector<SubvolumeRecord>> subvolumes = (*index)->ListSubvolumes();
  if (!subvolumes.ok()) return subvolumes.status();
  return FormatStatusReport(location->path, location->db_path, *stats, *subvolumes);
}

int RunStatus(const std::vector<std::string>& volumes, absl::string_view db_dir) {
  int failed = 0;
  for (const std::string& volume : volumes) {
    absl::StatusOr<std::string> report = VolumeStatusReport(volume, db_dir, absl::Now());
    if (!report.ok()) {
      LogError(volume, "%s", report.status().message());
      ++failed;
      continue;
    }
    std::fputs(report->c_str(), stdout);
  }
  std::fflush(stdout);
  return ExitCodeFor(static_cast<int>(volumes.size()), failed);
}

}  // namespace btrdupd
