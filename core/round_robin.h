// RoundRobin: which volume the daemon serves next, and how long it may sleep.
//
// The daemon has one processing thread and serves its volumes in turn, one unit of work
// per volume per turn (an incremental pass, one file hashed, one group deduped), so a
// huge volume cannot starve a small one. This class holds only the scheduling state and
// makes every decision from the `now` it is given: it runs no work, reads no clock and
// makes no system call, so it is tested with plain absl::Time values.
//
// Per volume it knows:
//   - when the next change check (incremental pass) is due: at start, then every
//     `scan_interval` after the previous one finished;
//   - whether the volume has work pending now, or nothing until a known time (the
//     earliest next-eligible file, a scheduled full scan or maintenance);
//   - whether the volume failed (unmounted, database error, ...) and when to retry it:
//     the retry delay doubles from `min_retry` up to `max_retry`; a success resets it.
//
// Contract of one turn:
//   std::optional<Turn> t = rr.Next(now);     // nullopt: sleep until rr.NextWake(now)
//   ... run t->kind on volume t->volume ...
//   rr.Report*(t->volume, ...);               // exactly one report per turn
//
// Thread-compatible: one owner, no locking.

#ifndef BTRDUPD_CORE_ROUND_ROBIN_H_
#define BTRDUPD_CORE_ROUND_ROBIN_H_

#include <optional>
#include <vector>

#include "absl/time/time.h"

namespace btrdupd {

struct RoundRobinOptions {
  absl::Duration scan_interval = absl::Seconds(60);  // between change checks
  absl::Duration min_retry = absl::Seconds(30);      // first retry after a failure
  absl::Duration max_retry = absl::Hours(1);         // retry delay cap
};

class RoundRobin {
 public:
  enum class Kind {
    kOpen,         // (re)open a volume that failed or was never opened
    kChangeCheck,  // run an incremental pass (or the full scan the scanner decides on)
    kWork,         // run one unit of pending work (hash / dedupe / maintenance)
  };
  struct Turn {
    int volume = 0;
    Kind kind = Kind::kWork;
  };

  explicit RoundRobin(const RoundRobinOptions& options) : options_(options) {}

  // Adds a volume, not yet opened: its first turn (kOpen) is due at once. Returns its
  // index (0, 1, ... in the order added).
  int AddVolume();
  int volume_count() const { return static_cast<int>(volumes_.size()); }

  // The next volume to serve at `now`, starting after the one served last; nullopt when
  // no volume has anything due (sleep until NextWake(now)).
  // Clock steps: a change check is never due more than scan_interval after `now`, nor a
  // retry more than its current delay, whatever times were reported before; so a wall
  // clock stepped back (NTP, by a day) delays nothing by the size of the step, and one
  // stepped forward only makes things due at once.
  std::optional<Turn> Next(absl::Time now);

  // The earliest time at which some volume has something due; InfinitePast() if
  // something is due already; InfiniteFuture() if there are no volumes.
  absl::Time NextWake(absl::Time now) const;

  // --- Reports: exactly one after each turn ---
  // The volume opened: a change check is due at once.
  void ReportOpened(int volume, absl::Time now);
  // A change check finished: the next is due scan_interval from now, and work may be
  // pending (the volume is served again on its next turn).
  void ReportChangeChecked(int volume, absl::Time now);
  // A unit of work was done and more may follow: the volume stays ready.
  void ReportWorked(int volume, absl::Time now);
  // Nothing to do before `next_work` (nullopt: nothing known; the next change check
  // will tell). The volume sleeps until then or its next change check.
  void ReportIdle(int volume, absl::Time now, std::optional<absl::Time> next_work);
  // The turn failed: the volume must be reopened after the backoff delay, which doubles
  // up to max_retry, or up to `max_delay` when that is shorter (a full or read-only
  // filesystem: conditions that end without btrdupd, so it resumes soon after).
  void ReportFailed(int volume, absl::Time now,
                    absl::Duration max_delay = absl::InfiniteDuration());

  // --- Outside events ---
  // Makes a change check due at once (e.g. after SIGHUP).
  void RequestChangeCheck(int volume, absl::Time now);

  // For status: whether the volume is failed, and when it is retried.
  bool failed(int volume) const { return volumes_[volume].failed; }
  absl::Time retry_at(int volume) const { return volumes_[volume].retry_at; }
  absl::Duration current_retry_delay(int volume) const {
    return volumes_[volume].retry_delay;
  }
  absl::Time next_change_check(int volume) const {
    return volumes_[volume].next_change_check;
  }

 private:
  struct VolumeState {
    bool opened = false;
    bool failed = false;
    absl::Time retry_at = absl::InfinitePast();
    absl::Duration retry_delay = absl::ZeroDuration();
    absl::Time next_change_check = absl::InfinitePast();
    absl::Time work_at = absl::InfiniteFuture();  // InfinitePast() = ready now
  };

  // What is due for `v` at `now`, if anything.
  std::optional<Kind> DueKind(const VolumeState& v, absl::Time now) const;
  absl::Time DueAt(const VolumeState& v) const;

  RoundRobinOptions options_;
  std::vector<VolumeState> volumes_;
  int last_served_ = -1;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_ROUND_ROBIN_H_
