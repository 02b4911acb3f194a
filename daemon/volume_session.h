// VolumeSession: one btrfs volume opened for work, the unit both run modes drive.
//
// Open() checks the volume (an existing directory, on btrfs, readable; root for any
// mode that dedupes), loads its `.btrdupd.conf`, opens its database (default
// `<volume>/.btrdupd/btrdupd.db`; with a database directory DIR,
// `DIR/<volumename>.btrdupd.db`, see daemon/volume_name.h), restores any read-only
// flag a previous run left flipped, and builds the scanner, the dedupe engine and the
// chosen backend (whose CheckAvailable() must pass: a missing duperemove is an error
// here, not mid-run). Every error names the volume and says what to do.
//
// Work comes in small units so the daemon can serve volumes round-robin:
//   Scan(mode)  one change-detection pass (incremental, or full when needed/forced);
//   Step()      one unit of dedupe work (hash one file, or plan/dedupe/verify one group);
// and RunOnce() does what one-shot mode needs: a scan, then steps until no work is
// left (or `should_stop` turns true), and returns a summary.
//
// With `dry_run` no file and no dedupe state is changed: groups are reported with the
// bytes they would save. With `ignore_stability_wait` files count as stable now
// (one-shot `--no-wait`, for cron after a backup); otherwise only files whose wait
// (initial_wait_minutes after the last change, with backoff) has passed are hashed.
//
// The destructor restores read-only flags still flipped and closes the database.
// Not thread-safe: one processing thread per process.

#ifndef BTRDUPD_DAEMON_VOLUME_SESSION_H_
#define BTRDUPD_DAEMON_VOLUME_SESSION_H_

#include <atomic>
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

namespace btrdupd {

class Clock;
class VolumeIndex;
class DedupeBackend;
struct VolumeConfig;

// Where a volume's files are, resolved from what the user typed.
struct VolumeLocation {
  std::string path;     // canonical mount path (realpath)
  std::string name;     // VolumeNameForPath(path)
  std::string db_path;  // the database file
};

// Resolves `volume` and checks it is an existing, readable directory on btrfs.
// `db_dir` empty means the default location inside the volume. Does not open anything.
absl::StatusOr<VolumeLocation> ResolveVolume(absl::string_view volume,
                                             absl::string_view db_dir);

// "native" or "duperemove"; anything else is InvalidArgument naming the choices.
absl::Status ValidateBackendName(absl::string_view backend);

struct SessionOptions {
  std::string db_dir;                // "" = <volume>/.btrdupd/
  std::string backend = "native";    // see ValidateBackendName
  bool dry_run = false;
  bool force_rescan = false;         // the first Scan() is a full scan
  bool ignore_stability_wait = false;
  bool require_root = true;          // dedupe needs CAP_SYS_ADMIN for read-only dests
};

// What RunOnce() did, for the per-volume summary line.
struct VolumeSummary {
  bool full_scan = false;
  uint64_t files_scanned = 0;    // files the scan looked at (new or changed ones)
  uint64_t files_hashed = 0;
  uint64_t groups_deduped = 0;   // (would be, in dry-run)
  uint64_t files_deduped = 0;    // verified shared after the run (would be, in dry-run)
  uint64_t bytes_reclaimed = 0;  // verified (would be, in dry-run)
  std::map<std::string, uint64_t> skipped;  // reason -> files
  uint64_t files_waiting = 0;    // not yet stable, left for a later run
  std::optional<absl::Time> next_eligible;  // when the first of them becomes stable
  bool stopped = false;          // should_stop cut the run short
};

// Progress of a long phase: ("scan"|"hash"|"dedupe", done, total or 0, bytes).
using SessionProgress =
    std::function<void(absl::string_view phase, uint64_t done, uint64_t total,
                       uint64_t bytes)>;

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
  const VolumeConfig& config() const { return *config_; }
  VolumeIndex* index() { return index_.get(); }
  DedupeBackend* backend() { return backend_.get(); }

  // Re-reads `.btrdupd.conf` (SIGHUP). On error the old settings stay in force and
  // the error names file, line and key.
  absl::Status ReloadConfig();

  // One change-detection pass. `force_full` (or the session's force_rescan, for the
  // first pass) makes it a full walk. Returns how many files it saw.
  struct ScanOutcome {
    bool full = false;
    uint64_t files_seen = 0;
  };
  absl::StatusOr<ScanOutcome> Scan(bool force_full, const SessionProgress& progress,
                                   const std::atomic<bool>* should_stop);

  // One unit of dedupe work. Returns false when there is nothing to do right now.
  absl::StatusOr<bool> Step();

  // When the next not-yet-stable file becomes eligible (for the daemon's sleep).
  absl::StatusOr<std::optional<absl::Time>> NextEligible();

  // One-shot: Scan(), then work until idle or `should_stop`.
  absl::StatusOr<VolumeSummary> RunOnce(const SessionProgress& progress,
                                        const std::atomic<bool>* should_stop);

 private:
  struct Parts;  // scanner, engine, file access: see volume_session.cc
  VolumeSession(VolumeLocation location, SessionOptions options, Clock* clock);

  absl::Status Build();

  const VolumeLocation location_;
  const SessionOptions options_;
  Clock* const clock_;
  std::unique_ptr<VolumeConfig> config_;
  std::unique_ptr<VolumeIndex> index_;
  std::unique_ptr<DedupeBackend> backend_;
  std::unique_ptr<Parts> parts_;
  bool scanned_once_ = false;
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_VOLUME_SESSION_H_
