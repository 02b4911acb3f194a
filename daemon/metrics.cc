#include "daemon/metrics.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/index.h"
#include "core/skip_kind.h"
#include "core/scan_policy.h"
#include "daemon/utf8.h"
#include "daemon/volume_session.h"
#include "ioctl/unique_fd.h"

ABSL_FLAG(std::string, metrics_file, "",
          "PATH: Write Prometheus metrics (text format, for node_exporter's textfile\n"
          "collector) to PATH: after a one-shot run, every minute in the daemon.\n"
          "Written atomically (temporary file + rename). Series are listed in btrdupd(8).");

namespace btrdupd {
namespace {

// A label value: backslash, double quote and line feed escaped; bytes that are not
// valid UTF-8 replaced (the format is UTF-8).
std::string LabelValue(absl::string_view value) {
  return MapUtf8(
      value,
      [](std::string& out, unsigned char c) {
        if (c == '\\') {
          out.append("\\\\");
        } else if (c == '"') {
          out.append("\\\"");
        } else if (c == '\n') {
          out.append("\\n");
        } else {
          out.push_back(static_cast<char>(c));
        }
      },
      [](std::string& out, unsigned char) { out.append("\xef\xbf\xbd"); },  // U+FFFD
      /*c1_is_bad=*/false);
}

class Family {
 public:
  Family(std::string* out, absl::string_view name, absl::string_view type,
         absl::string_view help)
      : out_(out), name_(name) {
    absl::StrAppend(out_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  }
  void Sample(absl::string_view volume, double value, absl::string_view kind = "") {
    absl::StrAppend(out_, name_, "{volume=\"", LabelValue(volume), "\"");
    if (!kind.empty()) absl::StrAppend(out_, ",kind=\"", LabelValue(kind), "\"");
    absl::StrAppend(out_, "} ", absl::StrFormat("%.17g", value), "\n");
  }

 private:
  std::string* out_;
  std::string name_;
};

}  // namespace

std::string FormatMetrics(const std::vector<VolumeMetrics>& volumes) {
  std::string out;
  auto each = [&](absl::string_view name, absl::string_view type, absl::string_view help,
                  const std::function<void(Family&, const VolumeMetrics&)>& emit) {
    Family family(&out, name, type, help);
    for (const VolumeMetrics& v : volumes) emit(family, v);
  };
  // A figure every volume that is up has, read from one field.
  auto up_figure = [&](absl::string_view name, absl::string_view type, absl::string_view help,
                       auto field) {  // a pointer to a VolumeMetrics member
    each(name, type, help, [field](Family& f, const VolumeMetrics& v) {
      if (v.up) f.Sample(v.volume, static_cast<double>(v.*field));
    });
  };
  each("btrdupd_up", "gauge", "1 if btrdupd processed (one-shot) or serves (daemon) the volume.",
       [](Family& f, const VolumeMetrics& v) { f.Sample(v.volume, v.up ? 1 : 0); });
  up_figure("btrdupd_deduped_files_total", "counter",
            "Files newly deduped (verified shared) since the volume's database was made.",
            &VolumeMetrics::deduped_files_total);
  up_figure("btrdupd_deduped_bytes_total", "counter",
            "Bytes of files newly deduped (now sharing the reference's extents) since the "
            "volume's database was made.",
            &VolumeMetrics::deduped_bytes_total);
  up_figure("btrdupd_freed_bytes_total", "counter",
            "Disk space those dedupes returned: the old extents nothing else still held "
            "(less than the shared bytes when snapshots or reflinks hold copies).",
            &VolumeMetrics::freed_bytes_total);
  up_figure("btrdupd_saveable_bytes", "gauge",
            "Bytes of hashed duplicates not yet deduped.",
            &VolumeMetrics::saveable_bytes);
  up_figure("btrdupd_files_tracked", "gauge",
            "Files in the volume's index.",
            &VolumeMetrics::files_tracked);
  up_figure("btrdupd_files_waiting", "gauge",
            "Files in their stability wait (changed recently, not yet eligible).",
            &VolumeMetrics::files_waiting);
  up_figure("btrdupd_files_skipped", "gauge",
            "Files whose dedupe was refused (all kinds).",
            &VolumeMetrics::files_skipped);
  each("btrdupd_skipped_files", "gauge", "Files whose dedupe was refused, by kind.",
       [](Family& f, const VolumeMetrics& v) {
         for (const auto& [kind, n] : v.skipped_by_kind) {
           f.Sample(v.volume, static_cast<double>(n), kind);
         }
       });
  each("btrdupd_last_full_scan_timestamp_seconds", "gauge",
       "When the last full scan of the volume completed (Unix time).",
       [](Family& f, const VolumeMetrics& v) {
         if (v.last_full_scan.has_value()) {
           f.Sample(v.volume, absl::ToDoubleSeconds(*v.last_full_scan - absl::UnixEpoch()));
         }
       });
  each("btrdupd_errors_total", "counter",
       "Errors by kind: since the daemon started, or of the one-shot run.",
       [](Family& f, const VolumeMetrics& v) {
         for (const auto& [kind, n] : v.errors) {
           f.Sample(v.volume, static_cast<double>(n), kind);
         }
       });
  up_figure("btrdupd_database_bytes", "gauge",
            "Size of the volume's database.",
            &VolumeMetrics::database_bytes);
  each("btrdupd_last_run_timestamp_seconds", "gauge",
       "When these figures were taken (Unix time).", [](Family& f, const VolumeMetrics& v) {
         if (v.taken != absl::InfinitePast()) {
           f.Sample(v.volume, absl::ToDoubleSeconds(v.taken - absl::UnixEpoch()));
         }
       });
  return out;
}

absl::Status WriteMetricsFile(const std::string& path, absl::string_view text) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  auto fail = [&](absl::string_view what) {
    const int err = errno;
    unlink(tmp.c_str());
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat("metrics file ", path, ": ", what, ": ", strerror(err)));
  };
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd.valid()) return fail("cannot create the temporary file");
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n =
        TEMP_FAILURE_RETRY(write(fd.get(), text.data() + done, text.size() - done));
    if (n < 0) return fail("write");
    done += static_cast<size_t>(n);
  }
  if (fchmod(fd.get(), 0644) != 0) return fail("chmod");
  // Closed here rather than by the destructor: a failed close can be a lost write.
  if (close(fd.release()) != 0) return fail("close");
  if (rename(tmp.c_str(), path.c_str()) != 0) return fail("rename");
  return absl::OkStatus();
}

std::string MetricsFileFromFlags() { return absl::GetFlag(FLAGS_metrics_file); }

absl::StatusOr<std::map<std::string, int64_t>> SkippedFilesByKindName(VolumeIndex& index) {
  absl::StatusOr<std::vector<SkipKindSummary>> kinds = index.SkippedByKind(0);
  if (!kinds.ok()) return kinds.status();
  std::map<std::string, int64_t> files;
  for (const SkipKindSummary& kind : *kinds) {
    files[std::string(SkipKindName(kind.kind))] = kind.files;
  }
  return files;
}

absl::StatusOr<VolumeMetrics> MetricsOfSession(VolumeSession& session, absl::Time now) {
  VolumeMetrics m;
  m.volume = session.path();
  m.up = true;
  m.taken = now;
  absl::StatusOr<IndexStats> stats = session.index()->Stats(now);
  if (!stats.ok()) return stats.status();
  m.saveable_bytes = stats->bytes_saveable;
  m.files_tracked = stats->files_tracked;
  m.files_waiting = stats->files_waiting;
  m.files_skipped = stats->files_skipped;
  m.database_bytes = stats->database_bytes;
  m.freed_bytes_total = stats->bytes_freed;
  absl::StatusOr<std::map<std::string, int64_t>> skipped =
      SkippedFilesByKindName(*session.index());
  if (!skipped.ok()) return skipped.status();
  m.skipped_by_kind = *std::move(skipped);
  absl::StatusOr<VolumeSession::Totals> totals = session.LoadTotals();
  if (!totals.ok()) return totals.status();
  m.deduped_files_total = totals->deduped_files;
  m.deduped_bytes_total = totals->deduped_bytes;
  absl::StatusOr<FullScanState> full = LoadFullScanState(session.index());
  if (!full.ok()) return full.status();
  if (full->ever_completed) m.last_full_scan = full->last_full;
  return m;
}

}  // namespace btrdupd
