#include "daemon/daemon_loop.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "core/round_robin.h"
#include "daemon/daemon_volume.h"
#include "daemon/exit_codes.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/scaled_clock.h"
#include "daemon/session_flags.h"
#include "daemon/signals.h"

ABSL_FLAG(bool, daemon, false,
          "Run as a daemon: serve every VOLUME continuously (round-robin, one unit of\n"
          "work per volume per turn) until SIGTERM. Status: btrdupd --daemon-status.");
ABSL_FLAG(std::string, socket_dir, btrdupd::kDefaultSocketDir,
          "DIR: Where the daemon creates each volume's status socket\n"
          "(DIR/<volumename>.sock, mode 0600; a long name is shortened to fit).\n"
          "At most 84 bytes.");
ABSL_FLAG(absl::Duration, scan_interval, absl::Seconds(60),
          "DURATION: How often the daemon looks for changed files (e.g. 60s, 5m).");
ABSL_FLAG(uint64_t, test_hash_slice_bytes, 0,
          "BYTES: For tests only: hash a file in slices of this many bytes instead of\n"
          "128 MiB (0: the default).");
ABSL_FLAG(std::string, test_hold_hash_while, "",
          "PATH: For tests only: while PATH exists, a file hashed in slices does not go\n"
          "on past the slice it is at.");
ABSL_FLAG(double, test_time_scale, 1.0,
          "FACTOR: For tests and benchmarks only: run the daemon's clock FACTOR times\n"
          "faster than real time (waits, backoff, scan interval, schedules alike).\n"
          "Times recorded in the database are then not real; never use on real data.");

namespace btrdupd {
namespace {

// At most this long in one poll(), so a wall-clock jump is noticed.
constexpr absl::Duration kMaxSleep = absl::Minutes(10);
// Retry cap for a volume that is full, read-only or unmounted (the others: max_retry).
constexpr absl::Duration kMaxConditionRetry = absl::Minutes(10);

class Daemon {
 public:
  Daemon(const std::vector<std::string>& volumes, const DaemonOptions& options)
      : options_(options), clock_(options.time_scale, options.session.test_clock_offset), rr_(RoundRobinFor(options)) {
    // A stop signal interrupts the hashing of a huge file instead of waiting for it.
    SessionOptions session = options.session;
    session.should_stop = [this] {
      return stop_ || (signals_ != nullptr && signals_->StopPending());
    };
    for (const std::string& v : volumes) {
      volumes_.push_back(std::make_unique<DaemonVolume>(v, session, &clock_));
      rr_.AddVolume();
    }
  }

  int Run();

 private:
  static RoundRobinOptions RoundRobinFor(const DaemonOptions& options) {
    RoundRobinOptions rr;
    rr.scan_interval = options.scan_interval;
    rr.min_retry = options.min_retry;
    rr.max_retry = options.max_retry;
    return rr;
  }

  int Start();
  // Writes --metrics-file when it is due; returns when it is due next.
  absl::Time MaybeWriteMetrics(absl::Time now);
  // Polls signals and sockets for at most `timeout` (real time) and handles them.
  void PollEvents(absl::Duration timeout);
  void RunTurn(const RoundRobin::Turn& turn);
  void Fail(int v, absl::string_view kind, const absl::Status& status);
  VolumeScheduleView ViewOf(int v) const;

  const DaemonOptions options_;
  ScaledClock clock_;
  RoundRobin rr_;
  std::vector<std::unique_ptr<DaemonVolume>> volumes_;
  std::unique_ptr<SignalWatcher> signals_;
  bool stop_ = false;
  absl::Time next_metrics_ = absl::InfinitePast();
};

absl::Time Daemon::MaybeWriteMetrics(absl::Time now) {
  if (options_.metrics_file.empty()) return absl::InfiniteFuture();
  // A clock stepped back does not put the next write off by the size of the step.
  next_metrics_ = std::min(next_metrics_, now + options_.metrics_interval);
  if (now < next_metrics_) return next_metrics_;
  std::vector<VolumeMetrics> all;
  for (auto& vol : volumes_) all.push_back(vol->Metrics(now));
  absl::Status written = WriteMetricsFile(options_.metrics_file, FormatMetrics(all));
  if (!written.ok()) LogWarning("", "%s", written.message());
  next_metrics_ = now + options_.metrics_interval;
  return next_metrics_;
}

VolumeScheduleView Daemon::ViewOf(int v) const {
  VolumeScheduleView view;
  view.failed = rr_.failed(v);
  view.retry_at = rr_.retry_at(v);
  view.next_change_check = rr_.next_change_check(v);
  view.stopping = stop_;
  return view;
}

void Daemon::Fail(int v, absl::string_view kind, const absl::Status& status) {
  DaemonVolume& vol = *volumes_[v];
  const bool new_failure = vol.RecordError(kind, status);
  vol.Close();
  // A full disk, a read-only or unmounted filesystem: conditions that end without
  // btrdupd, so the retries stay frequent enough to resume soon after.
  const bool condition = absl::IsResourceExhausted(status) || absl::IsUnavailable(status);
  rr_.ReportFailed(v, clock_.Now(), condition ? kMaxConditionRetry : absl::InfiniteDuration());
  const std::string delay =
      absl::FormatDuration(clock_.ToRealDuration(rr_.current_retry_delay(v)));
  if (new_failure) {
    LogWarning(vol.display_path(), "will retry in %s (then less often, up to every %s)", delay,
               absl::FormatDuration(clock_.ToRealDuration(
                   condition ? std::min(kMaxConditionRetry, options_.max_retry)
                             : options_.max_retry)));
  } else {
    LogDebug(vol.display_path(), "will retry in %s", delay);
  }
}

int Daemon::Start() {
  absl::StatusOr<std::unique_ptr<SignalWatcher>> signals = SignalWatcher::Create();
  if (!signals.ok()) {
    LogError("", "cannot watch signals: %s", signals.status().message());
    return kExitAllFailed;
  }
  signals_ = *std::move(signals);

  // Open every volume now: one held by another btrdupd stops the start-up (the admin
  // runs two daemons, or a one-shot run is still going), before any socket is touched.
  const absl::Time now = clock_.Now();
  for (int v = 0; v < static_cast<int>(volumes_.size()); ++v) {
    DaemonVolume& vol = *volumes_[v];
    absl::Status opened = vol.Open();
    if (opened.ok()) {
      rr_.ReportOpened(v, now);
      continue;
    }
    if (vol.lock_refused()) {
      LogError(vol.display_path(), "%s", opened.message());
      return kExitAllFailed;
    }
    Fail(v, "open", opened);
  }

  absl::Status dir = PrepareSocketDir(options_.socket_dir);
  if (!dir.ok()) {
    LogError("", "status sockets: %s", dir.message());
    return kExitAllFailed;
  }
  // A volume whose socket cannot be made (a file in its place, ...) is still served; it
  // only cannot be asked. One volume's trouble never stops the others.
  for (auto& vol : volumes_) {
    absl::Status listening = vol->StartStatusServer(options_.socket_dir, {});
    if (!listening.ok()) {
      LogError(vol->display_path(), "no status socket (the volume is served without): %s",
               listening.message());
    }
  }
  LogInfo("", "daemon started (pid %d) on %d volume(s); change check every %s; sockets in %s",
          getpid(), volumes_.size(), absl::FormatDuration(options_.scan_interval),
          options_.socket_dir);
  if (options_.time_scale != 1.0) {
    LogWarning("", "test time scale %g: the daemon's clock runs faster than real time",
               options_.time_scale);
  }
  return kExitOk;
}

void Daemon::PollEvents(absl::Duration timeout) {
  std::vector<pollfd> fds;
  fds.push_back(pollfd{signals_->fd(), POLLIN, 0});
  absl::Time deadline = absl::InfiniteFuture();
  for (auto& vol : volumes_) {
    if (vol->status_server() == nullptr) continue;
    vol->status_server()->AppendPollFds(fds);
    deadline = std::min(deadline, vol->status_server()->NextDeadline());
  }
  const absl::Time real_now = absl::Now();
  if (deadline != absl::InfiniteFuture()) {
    timeout = std::min(timeout, std::max(deadline - real_now, absl::ZeroDuration()));
  }
  timeout = std::clamp(timeout, absl::ZeroDuration(), kMaxSleep);
  // Round up so a wake-up is never early by a fraction of a millisecond (which would
  // turn into a burst of zero-timeout polls).
  int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(timeout + absl::Microseconds(999)));
  int rc = poll(fds.data(), fds.size(), timeout_ms);
  if (rc < 0 && errno != EINTR) {
    LogWarning("", "poll: %s", strerror(errno));
  }
  if (rc <= 0 && deadline == absl::InfiniteFuture()) return;

  SignalEvents events = signals_->Take();
  if (events.stop && !stop_) {
    stop_ = true;
    LogInfo("", "%s received: finishing, committing and restoring read-only flags",
            strsignal(events.stop_signal));
  }
  if (events.reload) {
    LogInfo("", "SIGHUP received: re-reading each volume's configuration");
    for (auto& vol : volumes_) vol->ReloadConfig();
  }
  const absl::Time after = absl::Now();
  for (int v = 0; v < static_cast<int>(volumes_.size()); ++v) {
    DaemonVolume& vol = *volumes_[v];
    if (vol.status_server() == nullptr) continue;
    vol.status_server()->Service(after, [&](absl::string_view request) {
      return vol.HandleRequest(request, ViewOf(v));
    });
  }
}

void Daemon::RunTurn(const RoundRobin::Turn& turn) {
  const int v = turn.volume;
  DaemonVolume& vol = *volumes_[v];
  switch (turn.kind) {
    case RoundRobin::Kind::kOpen: {
      absl::Status opened = vol.Open();
      if (!opened.ok()) {
        Fail(v, "open", opened);
        return;
      }
      LogInfo(vol.display_path(), "opened");
      rr_.ReportOpened(v, clock_.Now());
      return;
    }
    case RoundRobin::Kind::kChangeCheck: {
      absl::StatusOr<DaemonVolume::UnitResult> r =
          vol.ChangeCheck([this] { return stop_ || signals_->StopPending(); });
      if (!r.ok()) {
        if (absl::IsCancelled(r.status())) {
          // A stop signal is waiting (StopPending only looks): take it now. Run() leaves
          // its loop as soon as stop_ is set, and a signal left pending would be
          // delivered with its default action (death) when the watcher unblocks it.
          PollEvents(absl::ZeroDuration());
          stop_ = true;
          return;
        }
        Fail(v, "scan", r.status());
        return;
      }
      vol.RecordRecovered();
      const absl::Time now = clock_.Now();
      rr_.ReportChangeChecked(v, now);
      // Nothing changed and the volume was asleep: it stays asleep (no new pass).
      if (!r->changes_found && vol.idle_until().has_value()) {
        std::optional<absl::Time> until = vol.idle_until();
        if (*until == absl::InfiniteFuture()) until.reset();
        rr_.ReportIdle(v, now, until);
      }
      return;
    }
    case RoundRobin::Kind::kWork: {
      absl::StatusOr<DaemonVolume::UnitResult> r = vol.WorkUnit();
      if (!r.ok()) {
        Fail(v, "engine", r.status());
        return;
      }
      vol.RecordRecovered();
      if (r->worked) {
        rr_.ReportWorked(v, clock_.Now());
      } else {
        rr_.ReportIdle(v, clock_.Now(), r->next_work);
      }
      return;
    }
  }
}

int Daemon::Run() {
  int started = Start();
  if (started != kExitOk) return started;
  while (!stop_) {
    PollEvents(absl::ZeroDuration());
    if (stop_) break;
    const absl::Time now = clock_.Now();
    const absl::Time metrics_due = MaybeWriteMetrics(now);
    std::optional<RoundRobin::Turn> turn = rr_.Next(now);
    if (turn.has_value()) {
      RunTurn(*turn);
      continue;
    }
    absl::Time wake = std::min(rr_.NextWake(now), metrics_due);
    absl::Duration sleep =
        wake == absl::InfiniteFuture() ? kMaxSleep : clock_.ToRealDuration(wake - now);
    PollEvents(sleep);
  }
  for (auto& vol : volumes_) {
    if (vol->is_open()) {
      vol->Close();
      LogInfo(vol->display_path(), "closed: work committed, read-only flags restored");
    }
  }
  volumes_.clear();  // removes the sockets
  LogInfo("", "daemon stopped");
  return kExitOk;
}

}  // namespace

bool DaemonModeRequested() { return absl::GetFlag(FLAGS_daemon); }

DaemonOptions DaemonOptionsFromFlags() {
  DaemonOptions options;
  options.session = SessionOptionsFromFlags();
  // One unit of work stays short however large a file: it is hashed in slices.
  const uint64_t slice = absl::GetFlag(FLAGS_test_hash_slice_bytes);
  options.session.hash_slice_bytes = slice > 0 ? slice : kDaemonHashSliceBytes;
  options.session.hash_slice_time = kDaemonHashSliceTime;
  options.session.test_hold_hash_while = absl::GetFlag(FLAGS_test_hold_hash_while);
  options.socket_dir = absl::GetFlag(FLAGS_socket_dir);
  while (options.socket_dir.size() > 1 && options.socket_dir.back() == '/') {
    options.socket_dir.pop_back();
  }
  options.scan_interval = std::max(absl::GetFlag(FLAGS_scan_interval), absl::Seconds(1));
  options.metrics_file = MetricsFileFromFlags();
  double scale = absl::GetFlag(FLAGS_test_time_scale);
  options.time_scale = scale > 0 ? scale : 1.0;
  return options;
}

int RunDaemon(const std::vector<std::string>& volumes, const DaemonOptions& options) {
  Daemon daemon(volumes, options);
  return daemon.Run();
}

}  // namespace btrdupd
