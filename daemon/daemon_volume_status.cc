// DaemonVolume's answers to the outside: the status socket's reply and the metrics
// (daemon/daemon_volume.h). Split from daemon_volume.cc, which does the volume's work.

#include <unistd.h>

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/index.h"
#include "core/maintenance.h"
#include "core/scan_policy.h"
#include "daemon/daemon_volume.h"
#include "daemon/metrics.h"
#include "daemon/status_json.h"
#include "daemon/version.h"

namespace btrdupd {
namespace {

// Size groups looked at to count the queues for one status reply; beyond this the
// counts are lower bounds (flagged in the reply's activity text).
constexpr int kMaxQueueSizes = 256;


std::optional<absl::Time> MetaTime(VolumeIndex* index, absl::string_view key) {
  absl::StatusOr<std::optional<std::string>> value = index->GetMeta(key);
  if (!value.ok() || !value->has_value()) return std::nullopt;
  int64_t seconds = 0;
  if (!absl::SimpleAtoi(**value, &seconds)) return std::nullopt;
  return absl::FromUnixSeconds(seconds);
}


std::string LocalTimeText(absl::Time t) {
  if (t == absl::InfiniteFuture()) return "never";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", t, absl::LocalTimeZone());
}


}  // namespace

VolumeMetrics DaemonVolume::Metrics(absl::Time now) {
  if (session_ != nullptr && (metrics_stale_ || !metrics_.has_value())) {
    absl::StatusOr<VolumeMetrics> m = MetricsOfSession(*session_, now);
    if (m.ok()) {
      metrics_ = *std::move(m);
      metrics_stale_ = false;
    } else {
      RecordError("metrics", m.status());
    }
  }
  VolumeMetrics out;
  if (session_ != nullptr && metrics_.has_value()) out = *metrics_;
  out.volume = display_path_;
  out.up = session_ != nullptr;
  out.taken = now;
  out.errors.clear();
  for (const auto& [kind, n] : errors_) out.errors[kind] = n;
  return out;
}

std::string DaemonVolume::HandleRequest(absl::string_view request,
                                        const VolumeScheduleView& view) {
  absl::string_view trimmed = absl::StripAsciiWhitespace(request);
  if (trimmed.empty() || trimmed == "status") return BuildStatusJson(view);
  return ErrorReplyJson(absl::StrCat("unknown request '", trimmed.substr(0, 64),
                                     "'; send the line 'status'"));
}

std::string DaemonVolume::BuildStatusJson(const VolumeScheduleView& view) {
  const absl::Time now = clock_->Now();
  DaemonStatus s;
  s.pid = getpid();
  s.uptime = now - started_;
  s.version = kBtrdupdVersion;
  s.volume = display_path_;
  s.volume_name = volume_name_;
  s.state = view.stopping ? "stopping" : (view.failed || !is_open()) ? "failed" : "ok";
  s.activity = activity_;
  if (session_ != nullptr) {
    if (std::optional<HashProgress> p = session_->hash_progress(); p.has_value()) {
      s.hashing = HashingStatus{p->path, p->offset, p->size};
      s.activity = absl::StrCat("hashing ", p->path, " (", p->offset, " of ", p->size,
                                " bytes)");
    }
  }
  if (s.state == "ok" && idle_until_.has_value()) {
    // Idle: name the nearest thing the daemon will do for this volume.
    std::string what = idle_what_;
    absl::Time when = *idle_until_;
    if (view.next_change_check < when) {
      when = view.next_change_check;
      what = "change check";
    }
    s.activity = absl::StrCat("idle; next: ", what, " at ", LocalTimeText(when));
  }
  if (s.state == "failed") {
    // A full disk or a read-only filesystem pauses the volume; anything else is a failure.
    const char* what = failure_code_ == absl::StatusCode::kResourceExhausted
                           ? "paused: no space left"
                           : "unavailable";
    s.activity = absl::StrCat(what, " (", last_error_, "); retrying at ",
                              LocalTimeText(view.retry_at));
  }
  s.scan_pending = is_open() && view.next_change_check <= now;
  s.next_change_check = FiniteTime(view.next_change_check);
  Rate minute = meter_.LastMinute(now);
  Rate overall = meter_.SinceStart(now);
  s.files_per_second_last_minute = minute.files_per_second;
  s.bytes_per_second_last_minute = minute.bytes_per_second;
  s.files_per_second_since_start = overall.files_per_second;
  s.bytes_per_second_since_start = overall.bytes_per_second;
  s.errors = errors_;
  s.last_error = last_error_;
  if (session_ != nullptr) {
    VolumeIndex* index = session_->index();
    absl::StatusOr<IndexStats> stats = index->Stats(now);
    if (stats.ok()) s.database = *stats;
    absl::StatusOr<std::map<std::string, int64_t>> skipped = SkippedFilesByKindName(*index);
    if (skipped.ok()) s.skipped_by_kind = *std::move(skipped);
    absl::StatusOr<std::vector<uint64_t>> sizes =
        index->SizesWithWork(session_->config().min_file_size, now);
    if (sizes.ok()) {
      int looked = 0;
      for (uint64_t size : *sizes) {
        if (++looked > kMaxQueueSizes) break;
        absl::StatusOr<std::vector<FileRecord>> files = index->FilesOfSize(size);
        if (!files.ok()) break;
        for (const FileRecord& f : *files) {
          if (f.dedupe_state != DedupeState::kPending || f.next_eligible > now) continue;
          if (f.hash_state == HashState::kFull) {
            ++s.files_to_dedupe;
          } else {
            ++s.files_to_hash;
          }
        }
      }
      if (looked > kMaxQueueSizes) {
        s.activity = absl::StrCat(s.activity, " [queues counted over the first ",
                                  kMaxQueueSizes, " sizes only]");
      }
    }
    s.last_full_scan = MetaTime(index, kMetaLastFullScan);
    s.last_incremental_scan = MetaTime(index, kMetaLastIncremental);
    absl::StatusOr<absl::Time> next_full = NextFullScanDue(index, session_->config(), now);
    if (next_full.ok()) s.next_full_scan = FiniteTime(*next_full);
    const MaintenancePolicy policy = MaintenancePolicyOf(session_->config());
    s.last_vacuum = maintenance_.last_vacuum;
    s.last_dedupe_reset = maintenance_.last_dedupe_reset;
    s.next_vacuum = FiniteTime(NextVacuum(maintenance_, policy));
    s.next_dedupe_reset = FiniteTime(NextDedupeReset(maintenance_, policy));
  }
  return DaemonStatusToJson(s);
}

}  // namespace btrdupd
