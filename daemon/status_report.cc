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
#include "core/status_macros.h"
#include "daemon/exit_codes.h"
#include "daemon/log.h"
#include "daemon/one_shot.h"
#include "daemon/progress.h"
#include "daemon/status_json.h"
#include "daemon/volume_session.h"
#include "ioctl/errno_status.h"

ABSL_FLAG(bool, status, false,
          "Print what each VOLUME's database knows (files tracked, hashed, pending,\n"
          "duplicate groups, bytes shared, freed and still saveable, files skipped\n"
          "per kind with the last few of each, last scan and generation per subvolume)\n"
          "and exit. Scans nothing and changes nothing. With --json: one JSON object per\n"
          "volume.");
ABSL_FLAG(bool, json, false,
          "In a one-shot run: print the run's summary as one JSON object on standard\n"
          "output instead of the summary lines (per volume: scanned, hashed, bytes\n"
          "read, deduped, bytes shared, skipped by kind, waiting, duration, errors;\n"
          "a dry run's group listing is left out). With --status: print each volume's\n"
          "status as one JSON object per line. With --daemon-status: print the\n"
          "daemon's raw JSON reply. With --explain: one JSON object per path.");

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

std::string FormatStatusReport(const VolumeStatus& status) {
  const IndexStats& stats = status.stats;
  std::string text = absl::StrCat(status.volume, "\n");
  auto row = [&text](absl::string_view label, const std::string& value) {
    absl::StrAppendFormat(&text, "  %-22s %s\n", absl::StrCat(label, ":"), value);
  };
  row("database", absl::StrCat(PrintablePath(status.db_path), ", ",
                               HumanBytes(static_cast<uint64_t>(stats.database_bytes))));
  row("files tracked", absl::StrCat(stats.files_tracked));
  row("files hashed", absl::StrCat(stats.files_hashed));
  row("files pending", absl::StrCat(stats.files_pending));
  row("duplicate groups", absl::StrCat(stats.duplicate_groups));
  row("files deduped", absl::StrCat(stats.files_deduped));
  row("files already sharing", absl::StrCat(stats.files_already_shared));
  row("files skipped", absl::StrCat(stats.files_skipped));
  for (const SkipKindSummary& kind : status.skipped) {
    absl::StrAppendFormat(&text, "    %-20s %6d  %s\n", SkipKindName(kind.kind), kind.files,
                          SkipKindDescription(kind.kind));
    for (size_t i = 0; i < kind.recent.size() && i < kRecentSkipsShown; ++i) {
      const SkippedFile& file = kind.recent[i];
      absl::StrAppendFormat(&text, "      %s  %s: %s\n", When(file.skipped_at),
                            PrintablePath(file.path), PrintablePath(file.detail));
    }
  }
  row("bytes shared", Bytes(stats.bytes_deduped));
  row("bytes freed", Bytes(stats.bytes_freed));
  row("bytes still saveable", Bytes(stats.bytes_saveable));
  absl::StrAppendFormat(&text, "  subvolumes: %d\n", status.subvolumes.size());
  absl::StrAppendFormat(&text, "    %-8s %-12s %-25s %-3s %s\n", "ID", "GENERATION",
                        "LAST SCAN", "RO", "PATH");
  for (const SubvolumeRecord& subvol : status.subvolumes) {
    absl::StrAppendFormat(&text, "    %-8d %-12d %-25s %-3s %s\n", subvol.id,
                          subvol.last_generation, When(subvol.last_scan),
                          subvol.read_only ? "yes" : "no",
                          subvol.path.empty() ? "/" : PrintablePath(subvol.path));
  }
  return text;
}

std::string VolumeStatusToJson(const VolumeStatus& status) {
  const IndexStats& stats = status.stats;
  JsonWriter w;
  w.BeginObject();
  w.Key("volume").String(status.volume);
  w.Key("database").String(status.db_path);
  w.Key("database_bytes").Int(stats.database_bytes);
  w.Key("files_tracked").Int(stats.files_tracked);
  w.Key("files_hashed").Int(stats.files_hashed);
  w.Key("files_pending").Int(stats.files_pending);
  w.Key("files_waiting").Int(stats.files_waiting);
  w.Key("duplicate_groups").Int(stats.duplicate_groups);
  w.Key("files_deduped").Int(stats.files_deduped);
  w.Key("files_already_shared").Int(stats.files_already_shared);
  w.Key("files_skipped").Int(stats.files_skipped);
  w.Key("bytes_shared").Uint(stats.bytes_deduped);
  w.Key("bytes_freed").Uint(stats.bytes_freed);
  w.Key("bytes_saveable").Uint(stats.bytes_saveable);
  w.Key("skipped").Objects(status.skipped, [&w](const SkipKindSummary& kind) {
    w.Key("kind").String(SkipKindName(kind.kind));
    w.Key("description").String(SkipKindDescription(kind.kind));
    w.Key("files").Int(kind.files);
    w.Key("recent").Objects(kind.recent, [&w](const SkippedFile& file) {
      w.Key("path").String(file.path);
      w.Key("detail").String(file.detail);
      w.Key("skipped_at").Time(file.skipped_at);
    });
  });
  w.Key("subvolumes").Objects(status.subvolumes, [&w](const SubvolumeRecord& subvol) {
    w.Key("id").Uint(subvol.id);
    w.Key("path").String(subvol.path);
    w.Key("generation").Uint(subvol.last_generation);
    w.Key("last_scan").Time(subvol.last_scan);
    w.Key("read_only").Bool(subvol.read_only);
  });
  w.EndObject();
  return w.str();
}

absl::StatusOr<VolumeStatus> ReadVolumeStatus(absl::string_view volume,
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
        "' first", db_dir.empty() ? "" : absl::StrCat(" with --db-dir=", db_dir), ")"));
  }
  // Read-only: a query never creates, migrates or repairs the database. Through its
  // directory: no path is too long for SQLite (daemon/volume_open.h).
  absl::StatusOr<UniqueFd> dir = OpenDatabaseDirectory(*location);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index =
      VolumeIndex::OpenReadOnly(DatabaseBeneath(*dir, location->db_file), location->path);
  if (!index.ok()) return index.status();
  VolumeStatus status;
  status.volume = location->path;
  status.db_path = location->db_path;
  ASSIGN_OR_RETURN(status.stats, (*index)->Stats(now));
  ASSIGN_OR_RETURN(status.skipped, (*index)->SkippedByKind(kRecentSkipsInJson));
  ASSIGN_OR_RETURN(status.subvolumes, (*index)->ListSubvolumes());
  return status;
}

int PrintEach(const std::vector<std::string>& names,
              absl::FunctionRef<absl::StatusOr<std::string>(const std::string&)> report) {
  int failed = 0;
  for (const std::string& name : names) {
    absl::StatusOr<std::string> text = report(name);
    if (!text.ok()) {
      LogError(name, "%s", text.status().message());
      ++failed;
      continue;
    }
    std::fputs(text->c_str(), stdout);
  }
  std::fflush(stdout);
  return ExitCodeFor(static_cast<int>(names.size()), failed);
}

int RunStatus(const std::vector<std::string>& volumes, absl::string_view db_dir) {
  return PrintEach(volumes, [&](const std::string& volume) -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(VolumeStatus status, ReadVolumeStatus(volume, db_dir, absl::Now()));
    if (absl::GetFlag(FLAGS_json)) return absl::StrCat(VolumeStatusToJson(status), "\n");
    return FormatStatusReport(status);
  });
}

}  // namespace btrdupd
