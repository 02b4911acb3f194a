// DaemonVolume: one volume as the daemon serves it, unit by unit.
//
// It owns what the daemon keeps per volume: the VolumeSession (which holds the instance
// lock and the index, opened exactly as a one-shot run opens them: daemon/volume_open.h;
// scanner, engine, backend), the maintenance times, the status socket, and the figures
// the status reply shows (rates, errors by kind, current activity). The daemon loop
// (daemon/daemon_loop.h) decides *when* each unit runs (core/round_robin.h); this class
// runs it:
//   Open()         open the session (resolve, lock, database directory, database;
//                  restores read-only flags a killed run left), read maintenance times;
//   ChangeCheck()  one change-detection pass (the scanner decides incremental or full);
//                  first checks the volume is still the filesystem that was opened;
//                  a clock stepped back since the last check wakes the volume for a
//                  pass (stored waits and schedules are recomputed from the new now);
//   WorkUnit()     one engine step; when the engine is idle and maintenance is due
//                  (dedupe-state reset, VACUUM), that is the unit instead. The volume
//                  only goes to sleep after a whole pass that found nothing to do (a
//                  pass that worked is followed by another: files may have become
//                  eligible while it ran);
//   Close()        drop the session (commits, restores flags, releases the lock).
// Every failure is counted by kind, remembered for the status reply and returned; the
// loop closes the volume and retries it later.
//
// Not thread-safe: used from the daemon's one processing thread.

#ifndef BTRDUPD_DAEMON_DAEMON_VOLUME_H_
#define BTRDUPD_DAEMON_DAEMON_VOLUME_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/maintenance.h"
#include "core/rate_meter.h"
#include "daemon/metrics.h"
#include "daemon/status_server.h"
#include "daemon/volume_session.h"

namespace btrdupd {

// What the loop knows about a volume, for its status reply.
struct VolumeScheduleView {
  bool failed = false;
  absl::Time retry_at = absl::InfinitePast();
  absl::Time next_change_check = absl::InfinitePast();
  bool stopping = false;
};

class DaemonVolume {
 public:
  // `given_path` as on the command line; `clock` must outlive this object.
  DaemonVolume(std::string given_path, const SessionOptions& options, Clock* clock);
  ~DaemonVolume();

  DaemonVolume(const DaemonVolume&) = delete;
  DaemonVolume& operator=(const DaemonVolume&) = delete;

  // For log lines: the canonical mount path once known, else the path as given.
  const std::string& display_path() const { return display_path_; }
  // The name of its socket and database under --db-dir (daemon/volume_name.h).
  const std::string& volume_name() const { return volume_name_; }

  bool is_open() const { return session_ != nullptr; }
  // True if the last Open() failed because another process holds the volume's lock.
  bool lock_refused() const { return lock_refused_; }

  absl::Status Open();
  void Close();

  // Creates the status socket in `socket_dir`.
  absl::Status StartStatusServer(const std::string& socket_dir,
                                 const StatusServerOptions& options);
  StatusServer* status_server() { return server_.get(); }

  struct UnitResult {
    bool worked = false;  // false: idle until `next_work` (nullopt: nothing known)
    std::optional<absl::Time> next_work;
    bool changes_found = true;  // ChangeCheck only
  };
  // `should_stop` is polled by the scanner between directories; Cancelled if it stopped.
  absl::StatusOr<UnitResult> ChangeCheck(const std::function<bool()>& should_stop);
  absl::StatusOr<UnitResult> WorkUnit();

  // SIGHUP: re-reads .btrdupd.conf; a bad file keeps the old settings (logged, counted).
  void ReloadConfig();

  // When the volume last went idle, and until when (for a change check that found
  // nothing: the volume stays asleep).
  const std::optional<absl::Time>& idle_until() const { return idle_until_; }

  // Counts an error of `kind` and remembers it for the status reply. Logged as a warning
  // when it is new; the same kind and code again (a full disk, a read-only filesystem
  // failing every retry) is logged at debug level only, so the log says it once.
  // Returns true when it was logged as new.
  bool RecordError(absl::string_view kind, const absl::Status& status);
  // The volume worked again after failures: logs that once and forgets the streak.
  void RecordRecovered();
  void SetActivity(std::string activity) { activity_ = std::move(activity); }

  // Its figures for --metrics-file at `now` (up only while open). The index figures are
  // recomputed only after a unit that did something (an idle daemon costs nothing more).
  VolumeMetrics Metrics(absl::Time now);

  // The reply to one status-socket request line.
  std::string HandleRequest(absl::string_view request, const VolumeScheduleView& view);

 private:
  std::string BuildStatusJson(const VolumeScheduleView& view);
  absl::StatusOr<bool> RunDueMaintenance(absl::Time now);
  // False when the path no longer leads to the filesystem that was opened.
  bool StillMounted() const;
  // Unavailable when the filesystem is mounted read-only now (statvfs): no work is
  // started that would write to it.
  absl::Status CheckWritable() const;

  const std::string given_path_;
  SessionOptions options_;
  Clock* const clock_;
  const absl::Time started_;
  std::string display_path_;
  std::string volume_name_;

  std::unique_ptr<VolumeSession> session_;
  std::unique_ptr<StatusServer> server_;
  bool lock_refused_ = false;
  dev_t root_dev_ = 0;
  ino_t root_ino_ = 0;

  MaintenanceTimes maintenance_;
  RateMeter meter_;
  std::map<std::string, int64_t> errors_;
  std::string last_error_;
  // The failure streak: the kind and code of the last failure ("" after a success),
  // and the code (for the status wording of a paused volume).
  std::string failing_;
  absl::StatusCode failure_code_ = absl::StatusCode::kOk;
  // Check every page of the database at the next Open(): at start, and after a failure
  // that met a damaged page (DataLoss).
  bool verify_index_ = true;
  std::string activity_ = "starting";
  std::optional<absl::Time> idle_until_;
  std::string idle_what_;  // what happens at idle_until_ (for the status reply)
  std::optional<VolumeMetrics> metrics_;  // the last index figures, while still true
  bool metrics_stale_ = true;
  bool pass_did_work_ = false;  // the engine's current pass did some work
  // When the last change check ran: a later check that reads an earlier time saw the
  // clock stepped back.
  absl::Time last_change_check_ = absl::InfinitePast();
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_DAEMON_VOLUME_H_
