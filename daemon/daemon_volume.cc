#include "daemon/daemon_volume.h"

#include <limits.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/index.h"
#include "core/scan_policy.h"
#include "core/scanner.h"
#include "core/skip_kind.h"
#include "daemon/absolute_path.h"
#include "daemon/log.h"
#include "daemon/status_json.h"
#include "daemon/version.h"
#include "daemon/volume_name.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
DaemonVolume::DaemonVolume(std::string given_path, const SessionOptions& options,
                           Clock* clock)
    : given_path_(std::move(given_path)),
      options_(options),
      clock_(clock),
      started_(clock->Now()),
      meter_(started_) {
  display_path_ = AbsolutePath(given_path_);
  volume_name_ = VolumeNameForPath(display_path_);
}

DaemonVolume::~DaemonVolume() { Close(); }

absl::Status DaemonVolume::Open() {
  lock_refused_ = false;
  activity_ = "opening";
  // Opened as a one-shot run opens it (daemon/volume_open.h): the session holds the lock.
  SessionOptions options = options_;
  options.verify_index = verify_index_;
  absl::StatusOr<std::unique_ptr<VolumeSession>> session =
      VolumeSession::Open(given_path_, options, clock_);
  if (!session.ok()) {
    lock_refused_ = IsLockRefusal(session.status());
    return session.status();
  }
  verify_index_ = false;
  display_path_ = (*session)->path();
  struct stat st;
  if (stat(display_path_.c_str(), &st) != 0) {
    return btrdupd::ErrnoToStatus(errno, absl::StrCat("stat ", display_path_));
  }
  const absl::Time now = clock_->Now();
  absl::StatusOr<MaintenanceTimes> times = LoadMaintenanceTimes(*(*session)->index(), now);
  if (!times.ok()) return times.status();
  root_dev_ = st.st_dev;
  root_ino_ = st.st_ino;
  maintenance_ = *times;
  session_ = *std::move(session);
  activity_ = "opened";
  return absl::OkStatus();
}

void DaemonVolume::Close() {
  // The session's destructor commits and restores any read-only flag still flipped.
  session_.reset();
  idle_until_.reset();
}

absl::Status DaemonVolume::StartStatusServer(const std::string& socket_dir,
                                             const StatusServerOptions& options) {
  absl::StatusOr<std::unique_ptr<StatusServer>> server =
      StatusServer::Listen(SocketPathFor(socket_dir, volume_name_), options);
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  return absl::OkStatus();
}

absl::Status DaemonVolume::CheckWritable() const {
  struct statvfs vfs;
  if (statvfs(display_path_.c_str(), &vfs) != 0) return absl::OkStatus();  // StillMounted says
  if ((vfs.f_flag & ST_RDONLY) == 0) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(
      display_path_, " is mounted read-only (btrfs does this after a write error, or it was "
                     "remounted ro): work paused until it is writable again"));
}

bool DaemonVolume::StillMounted() const {
  struct stat st;
  if (stat(display_path_.c_str(), &st) != 0) return false;
  return st.st_dev == root_dev_ && st.st_ino == root_ino_;
}

absl::StatusOr<DaemonVolume::UnitResult> DaemonVolume::ChangeCheck(
    const std::function<bool()>& should_stop) {
  if (!StillMounted()) {
    return absl::UnavailableError(absl::StrCat(
        display_path_, " is no longer the filesystem btrdupd opened (unmounted?)"));
  }
  if (absl::Status writable = CheckWritable(); !writable.ok()) return writable;
  activity_ = "scanning for changes";
  absl::StatusOr<ScanReport> report = session_->Scan(ScanMode::kAuto, nullptr, should_stop);
  if (!report.ok()) return report.status();
  // --force-rescan asks for one full scan, not one per reopen after a failure.
  options_.force_rescan = false;
  if (report->errors > 0) {
    errors_["scan_file"] += report->errors;
    if (!report->first_errors.empty()) last_error_ = report->first_errors.front();
  }
  const int64_t changes = report->files_added + report->files_changed +
                          report->files_removed + report->dirs_removed +
                          report->subvolumes_added + report->subvolumes_removed;
  if (report->kind == ScanKind::kFull || changes > 0) {
    LogInfo(display_path_,
            "%s scan: %d files seen, %d added, %d changed, %d removed, %d errors in %s",
            ScanKindName(report->kind), report->files_seen, report->files_added,
            report->files_changed, report->files_removed, report->errors,
            absl::FormatDuration(report->duration));
  }
  UnitResult result;
  result.worked = true;
  result.changes_found = report->kind == ScanKind::kFull || changes > 0;
  // The wall clock went back since the last check (NTP stepped it): what the volume
  // sleeps for was computed before the step. Reload the maintenance times (read back as
  // at most now) and run a pass, which brings back the stored stability waits
  // (DedupeEngine, VolumeIndex::ClampStabilityWaits) and computes the sleep anew.
  const absl::Time now = clock_->Now();
  if (now < last_change_check_) {
    LogInfo(display_path_, "the clock went back by %s: recomputing waits and schedules",
            absl::FormatDuration(last_change_check_ - now));
    absl::StatusOr<MaintenanceTimes> times = LoadMaintenanceTimes(*session_->index(), now);
    if (!times.ok()) return times.status();
    maintenance_ = *times;
    result.changes_found = true;
  }
  last_change_check_ = now;
  if (result.changes_found) {
    metrics_stale_ = true;
    idle_until_.reset();
    activity_ = "processing changes";
  } else if (idle_until_.has_value()) {
    activity_ = "idle";
  }
  return result;
}

absl::StatusOr<bool> DaemonVolume::RunDueMaintenance(absl::Time now) {
  MaintenanceTask task = DueMaintenance(maintenance_, MaintenancePolicyOf(session_->config()), now);
  if (task == MaintenanceTask::kNone) return false;
  VolumeIndex* index = session_->index();
  absl::StatusOr<IndexStats> before = index->Stats(now);
  activity_ = task == MaintenanceTask::kVacuum ? "vacuuming the database"
                                               : "resetting dedupe states";
  absl::Status st = RunMaintenance(*index, task, now);
  if (!st.ok()) return st;
  absl::StatusOr<MaintenanceTimes> times = LoadMaintenanceTimes(*index, now);
  if (!times.ok()) return times.status();
  maintenance_ = *times;
  if (task == MaintenanceTask::kVacuum) {
    absl::StatusOr<IndexStats> after = index->Stats(now);
    LogInfo(display_path_, "vacuumed the database: %d -> %d bytes",
            before.ok() ? before->database_bytes : -1,
            after.ok() ? after->database_bytes : -1);
  } else {
    LogInfo(display_path_,
            "forgot dedupe states (hashes kept): every duplicate is verified again");
    idle_until_.reset();
  }
  return true;
}

absl::StatusOr<DaemonVolume::UnitResult> DaemonVolume::WorkUnit() {
  if (absl::Status writable = CheckWritable(); !writable.ok()) return writable;
  if (!options_.test_hold_hash_while.empty() && session_->hash_progress().has_value() &&
      access(options_.test_hold_hash_while.c_str(), F_OK) == 0) {
    // Tests: the hash stays part-way while the file exists; the volume waits a moment.
    UnitResult held;
    held.worked = false;
    held.next_work = clock_->Now() + absl::Seconds(30);
    return held;
  }
  const EngineStats before = session_->engine_stats();
  absl::StatusOr<StepResult> step = session_->Step();
  if (!step.ok()) return step.status();
  const absl::Time now = clock_->Now();
  // Rates count files hashed (read or hash copied) or deduped (incl. found already
  // shared), and bytes read plus bytes newly shared; one step may cover a whole group.
  const EngineStats& after = session_->engine_stats();
  meter_.Add(now,
             (after.files_hashed - before.files_hashed) +
                 (after.hashes_copied - before.hashes_copied) +
                 (after.files_deduped - before.files_deduped) +
                 (after.files_already_shared - before.files_already_shared),
             (after.bytes_read - before.bytes_read) + (after.bytes_shared - before.bytes_shared));
  UnitResult result;
  result.worked = true;
  if (step->MadeProgress()) pass_did_work_ = true;
  switch (step->kind) {
    case StepResult::Kind::kHashed:
      activity_ = absl::StrCat("hashing (last: ", step->path, ")");
      LogDebug(display_path_, "hashed %s (%d bytes read)", step->path, step->bytes_read);
      break;
    case StepResult::Kind::kHashCopied:
      break;
    case StepResult::Kind::kHashSlice:
      LogDebug(display_path_, "hashing %s: %s", step->path, step->detail);
      break;
    case StepResult::Kind::kFileSkipped:
      ++errors_["file_skipped"];
      last_error_ = absl::StrCat(step->path, ": ", step->detail);
      LogDebug(display_path_, "skipped %s: %s", step->path, step->detail);
      break;
    case StepResult::Kind::kDedupeBatch:
      activity_ = absl::StrCat("deduping (last group: ", step->path, ")");
      if (step->files_skipped > 0) errors_["dedupe_refused"] += step->files_skipped;
      if (step->files_changed > 0) errors_["changed_before_dedupe"] += step->files_changed;
      if (step->files_deduped > 0) {
        LogInfo(display_path_, "deduped %d files against %s: %d bytes shared",
                step->files_deduped, step->path, step->bytes_shared);
      }
      break;
    case StepResult::Kind::kIdle: {
      // A pass that did work may have missed files that became eligible while it ran
      // (its list of sizes was taken at its start): only a pass that finds nothing to
      // do lets the volume sleep.
      if (pass_did_work_) {
        pass_did_work_ = false;
        activity_ = "processing (starting another pass)";
        break;
      }
      absl::StatusOr<bool> maintained = RunDueMaintenance(now);
      if (!maintained.ok()) {
        RecordError("maintenance", maintained.status());
      } else if (*maintained) {
        break;  // that was this turn's unit
      }
      const MaintenancePolicy policy = MaintenancePolicyOf(session_->config());
      const absl::Time vacuum = NextVacuum(maintenance_, policy);
      const absl::Time reset = NextDedupeReset(maintenance_, policy);
      absl::Time next = std::min({step->next_eligible, vacuum, reset});
      idle_what_ = next == step->next_eligible ? "a file's stability wait ends"
                   : next == reset             ? "dedupe-state reset"
                                               : "database vacuum";
      result.worked = false;
      result.next_work = FiniteTime(next);
      idle_until_ = next;
      activity_ = "idle";
      break;
    }
    default:
      break;
  }
  if (result.worked) {
    idle_until_.reset();
    metrics_stale_ = true;
  }
  return result;
}

void DaemonVolume::ReloadConfig() {
  if (session_ == nullptr) return;  // read at the next Open()
  absl::Status st = session_->ReloadConfig();
  if (!st.ok()) {
    ++errors_["config"];
    last_error_ = std::string(st.message());
    LogWarning(display_path_, "keeping the previous settings: %s", st.message());
    return;
  }
  LogInfo(display_path_, "reloaded %s", kConfigFileName);
}

bool DaemonVolume::RecordError(absl::string_view kind, const absl::Status& status) {
  ++errors_[std::string(kind)];
  last_error_ = absl::StrCat(kind, ": ", status.message());
  failure_code_ = status.code();
  if (absl::IsDataLoss(status)) verify_index_ = true;
  // A condition (no space, read-only or unmounted) is one streak whichever step met it
  // (opening, scanning, deduping); any other failure is one per kind and code.
  const bool condition = absl::IsResourceExhausted(status) || absl::IsUnavailable(status);
  const std::string streak =
      condition ? absl::StatusCodeToString(status.code())
                : absl::StrCat(kind, "/", absl::StatusCodeToString(status.code()));
  if (streak == failing_) {
    LogDebug(display_path_, "still failing: %s: %s", kind, status.message());
    return false;
  }
  failing_ = streak;
  LogWarning(display_path_, "%s: %s", kind, status.message());
  return true;
}

void DaemonVolume::RecordRecovered() {
  if (failing_.empty()) return;
  LogInfo(display_path_, "working again (after: %s)", last_error_);
  failing_.clear();
  failure_code_ = absl::StatusCode::kOk;
}

}  // namespace btrdupd
