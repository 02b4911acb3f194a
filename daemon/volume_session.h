// VolumeSession: one btrfs volume opened for work, the unit both run modes drive.
//
// Open() opens the volume for work (daemon/volume_open.h: resolved, root checked,
// database directory made NOCOW, lock taken, database opened - default
// `<volume>/.btrdupd/btrdupd.db`; with a database directory DIR,
// `DIR/<volumename>.btrdupd.db`, see daemon/volume_name.h), loads its `.btrdupd.conf`,
// restores any read-only
// flag a previous run left flipped, and builds the scanner, the dedupe engine and the
// chosen backend (whose CheckAvailable() must pass: a missing duperemove is an error
// here, not mid-run). Every error names the volume and says what to do.
//
// Work comes in small units so the daemon can serve volumes round-robin:
//   Scan(mode)  one change-detection pass (incremental, or full when needed/forced);
//   Step()      one unit of dedupe work (hash one file, or plan/dedupe/verify one group);
// and RunOnce() does what one-shot mode needs: a scan (making up a full scan that
// was scheduled since the last run, see ScanOptions::catch_up_missed_full_scan), a
// due dedupe-state reset, steps until no work is left (or `should_stop` turns true), a
// due VACUUM (core/maintenance.h), and returns a summary. Every scan (both modes) lists
// the subvolumes after committing the running transaction (RealVolumeFs
// set_commit_before_listing), so the generations it records are exact and it sees
// every change made before it; and when RunOnce
// deduped files, it runs one more change check (Settle) while the trees it rewrote are
// still cached: a dedupe rewrites the inode of every file it shares, and without this
// the next run would look at all of them again.
//
// With `dry_run` no file and no dedupe state is changed: groups are reported with the
// bytes they would save. With `ignore_stability_wait` (one-shot `--no-wait`, for cron
// after a backup) every file known after a scan is stable at once
// (VolumeIndex::EndStabilityWaits); otherwise a file is hashed only once its wait
// (initial_wait_minutes after its last change, doubled on repeated change) has passed.
// Files a dedupe finds changed wait again either way.
//
// The destructor restores read-only flags still flipped and closes the database.
// Not thread-safe: one processing thread per process.

#ifndef BTRDUPD_DAEMON_VOLUME_SESSION_H_
#define BTRDUPD_DAEMON_VOLUME_SESSION_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/dedupe_backend.h"
#include "core/dedupe_engine.h"
#include "core/index.h"
#include "core/scanner.h"
#include "core/skip_kind.h"
#include "daemon/volume_open.h"

namespace btrdupd {

class FileOpener;    // daemon/file_opener.h

// "native" or "duperemove"; anything else is InvalidArgument naming the choices.
absl::Status ValidateBackendName(absl::string_view backend);

struct SessionOptions {
  std::string db_dir;                // "" = <volume>/.btrdupd/
  std::string backend = "native";    // see ValidateBackendName
  bool dry_run = false;
  bool force_rescan = false;         // the first Scan() is a full scan
  bool ignore_stability_wait = false;
  bool require_root = true;          // dedupe needs CAP_SYS_ADMIN for read-only dests
  // Tests only (--test-clock-offset): the run's clock reads this much later than real
  // time (daemon/scaled_clock.h). The caller builds the clock; Open() does not read it.
  absl::Duration test_clock_offset = absl::ZeroDuration();
  // One-shot --jobs: above 1, that many threads read the files the engine hashes next
  // (daemon/read_ahead_pool.h); hashing, the index and the dedupe calls stay on the
  // calling thread. The daemon keeps 1.
  int jobs = 1;
  // Check every page of the database before using it (after a run met a damaged page);
  // a damaged database is set aside and rebuilt either way (daemon/index_recovery.h).
  bool verify_index = false;
  // Polled between reads while a file is hashed (EngineOptions::should_stop), so a stop
  // request (SIGTERM) need not wait for a huge file. May be empty.
  std::function<bool()> should_stop;
  // Daemon: a file is hashed in slices of at most this many bytes or this long
  // (EngineOptions::hash_slice_bytes / hash_slice_time; 0: to its end in one step).
  uint64_t hash_slice_bytes = 0;
  absl::Duration hash_slice_time = absl::ZeroDuration();
  // Daemon tests only (--test-hold-hash-while): while this file exists, a hash part-way
  // does not go on (the volume waits), so a test sees it part-way every time.
  std::string test_hold_hash_while;
};

// What RunOnce() did, for the per-volume summary line: the scan's report, and the
// engine's steps added up (EngineCounts, core/step_result.h: a dry run counts
// groups_planned / files_planned / bytes_saveable instead of deduping).
struct VolumeSummary : EngineCounts {
  ScanReport scan;
  // When the first file still in its stability wait becomes eligible, if any waits.
  std::optional<absl::Time> next_eligible;
  bool stopped = false;          // should_stop cut the run short
  std::vector<std::string> maintenance;  // what was due and done, for people
  // Wall time of the scan and of the engine's steps by kind (for -v).
  absl::Duration scan_time;
  absl::Duration hash_time;    // kHashed / kHashCopied / kFileSkipped steps
  absl::Duration dedupe_time;  // kDedupeBatch / kPlannedGroup steps
  absl::Duration other_time;   // steps with no progress, and the final kIdle
  absl::Duration settle_time;  // the commit and change check after the dedupes
};

// Sees every scan progress report and every engine step of RunOnce(): for progress
// lines, and (dry run) to print each planned group. Either may be null.
struct SessionObserver {
  std::function<void(const ScanProgress&)> on_scan;
  // After the scan: at most how many bytes this run will read to hash (eligible files
  // not yet fully hashed that share their size with another file), for an ETA.
  std::function<void(uint64_t bytes_to_hash)> on_scanned;
  std::function<void(const StepResult&)> on_step;
};

class VolumeSession {
 public:
  // `clock` must outlive the session.
  static absl::StatusOr<std::unique_ptr<VolumeSession>> Open(absl::string_view volume,
                                                             const SessionOptions& options,
                                                             Clock* clock);
  ~VolumeSession();

  VolumeSession(const VolumeSession&) = delete;
  VolumeSession& operator=(const VolumeSession&) = delete;

  const VolumeLocation& location() const { return location_; }
  const std::string& path() const { return location_.path; }
  const VolumeConfig& config() const { return config_; }
  VolumeIndex* index() { return index_.get(); }
  DedupeBackend* backend() { return backend_.get(); }

  // Re-reads `.btrdupd.conf` (SIGHUP). On error the old settings stay in force and
  // the error names file, line and key.
  absl::Status ReloadConfig();

  // One change-detection pass (ScanMode::kAuto decides incremental or full; the
  // session's force_rescan makes its first pass kForceFull). `should_stop` (may be
  // null) is polled between directories; Cancelled when it stopped the pass.
  absl::StatusOr<ScanReport> Scan(ScanMode mode,
                                  const std::function<void(const ScanProgress&)>& progress,
                                  const std::function<bool()>& should_stop);

  // One unit of dedupe work (DedupeEngine::Step). kIdle: nothing to do before
  // `next_eligible`, until the next Scan() finds changes.
  absl::StatusOr<StepResult> Step();

  // Commits the running transaction and runs an incremental change check (see
  // RunOnce), so the next pass does not see this run's own dedupes as changes.
  absl::Status Settle(const std::function<bool()>& should_stop);

  // One-shot: Scan(kAuto), then Step() until idle or `should_stop` (may be null).
  absl::StatusOr<VolumeSummary> RunOnce(const SessionObserver& observer,
                                        const std::function<bool()>& should_stop);

  const EngineStats& engine_stats() const;
  // The file being hashed in slices, if one is part-way (DedupeEngine::hash_progress).
  std::optional<HashProgress> hash_progress() const;

  // At most how many bytes the engine will read to hash what is eligible now: files
  // not yet fully hashed in the size groups that have work. One look at those groups.
  absl::StatusOr<uint64_t> BytesToHash();

  // What this volume's sessions deduped since its database was made (kept in its
  // metadata, added to by each deduping Step() in its own transaction; a dry run adds
  // nothing).
  struct Totals {
    uint64_t deduped_files = 0;
    uint64_t deduped_bytes = 0;
  };
  absl::StatusOr<Totals> LoadTotals();

 private:
  struct Parts;  // file system access, engine: see volume_session.cc
  VolumeSession(OpenedVolume opened, SessionOptions options, Clock* clock);

  absl::Status Build();
  // Adds a deduping step's files and bytes to the Totals (EngineOptions::on_deduped:
  // inside the step's transaction).
  absl::Status AddToTotals(const StepResult& step);

  const VolumeLocation location_;
  const SessionOptions options_;
  Clock* const clock_;
  // From OpenVolumeForWork, held for the session's life (the lock is released last).
  std::unique_ptr<InstanceLock> lock_;
  UniqueFd db_dir_;  // the index is opened through it: closed after the index
  std::unique_ptr<VolumeIndex> index_;
  VolumeConfig config_;
  std::unique_ptr<FileOpener> opener_;  // every file opened after the scan goes through it
  std::unique_ptr<DedupeBackend> backend_;
  std::unique_ptr<Parts> parts_;
  bool scanned_once_ = false;
  bool catch_up_missed_full_scan_ = false;  // RunOnce (one-shot): see ScanOptions
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_VOLUME_SESSION_H_
