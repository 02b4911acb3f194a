#include "core/round_robin.h"

#include <algorithm>

namespace btrdupd {

int RoundRobin::AddVolume() {
  volumes_.emplace_back();
  return static_cast<int>(volumes_.size()) - 1;
}

std::optional<RoundRobin::Kind> RoundRobin::DueKind(const VolumeState& v,
                                                    absl::Time now) const {
  if (!v.opened || v.failed) {
    if (v.retry_at <= now) return Kind::kOpen;
    return std::nullopt;
  }
  if (v.next_change_check <= now) return Kind::kChangeCheck;
  if (v.work_at <= now) return Kind::kWork;
  return std::nullopt;
}

absl::Time RoundRobin::DueAt(const VolumeState& v) const {
  if (!v.opened || v.failed) return v.retry_at;
  return std::min(v.next_change_check, v.work_at);
}

std::optional<RoundRobin::Turn> RoundRobin::Next(absl::Time now) {
  for (VolumeState& v : volumes_) {  // see the header: clock steps
    if (v.next_change_check != absl::InfinitePast()) {
      v.next_change_check = std::min(v.next_change_check, now + options_.scan_interval);
    }
    if (v.failed) v.retry_at = std::min(v.retry_at, now + v.retry_delay);
  }
  const int n = volume_count();
  for (int step = 1; step <= n; ++step) {
    const int candidate = (last_served_ + step) % n;
    std::optional<Kind> kind = DueKind(volumes_[candidate], now);
    if (kind.has_value()) {
      last_served_ = candidate;
      return Turn{candidate, *kind};
    }
  }
  return std::nullopt;
}

absl::Time RoundRobin::NextWake(absl::Time now) const {
  absl::Time wake = absl::InfiniteFuture();
  for (const VolumeState& v : volumes_) {
    if (DueKind(v, now).has_value()) return absl::InfinitePast();
    wake = std::min(wake, DueAt(v));
  }
  return wake;
}

void RoundRobin::ReportOpened(int volume, absl::Time now) {
  VolumeState& v = volumes_[volume];
  v.opened = true;
  v.failed = false;
  // retry_delay is kept until a pass succeeds: a volume that opens but fails every
  // pass keeps backing off.
  v.retry_at = absl::InfinitePast();
  v.next_change_check = now;
  v.work_at = absl::InfinitePast();
}

void RoundRobin::ReportChangeChecked(int volume, absl::Time now) {
  VolumeState& v = volumes_[volume];
  v.next_change_check = now + options_.scan_interval;
  v.work_at = absl::InfinitePast();
  v.retry_delay = absl::ZeroDuration();
}

void RoundRobin::ReportWorked(int volume, absl::Time now) {
  VolumeState& v = volumes_[volume];
  v.work_at = absl::InfinitePast();
  v.retry_delay = absl::ZeroDuration();
}

void RoundRobin::ReportIdle(int volume, absl::Time now,
                            std::optional<absl::Time> next_work) {
  VolumeState& v = volumes_[volume];
  v.retry_delay = absl::ZeroDuration();
  // A time in the past would make the volume spin; the next turn is then simply the
  // next change check or the given time, whichever comes first, but never "now" again.
  if (!next_work.has_value()) {
    v.work_at = absl::InfiniteFuture();
  } else if (*next_work <= now) {
    v.work_at = now + absl::Seconds(1);
  } else {
    v.work_at = *next_work;
  }
}

void RoundRobin::ReportFailed(int volume, absl::Time now, absl::Duration max_delay) {
  VolumeState& v = volumes_[volume];
  v.failed = true;
  const absl::Duration cap = std::min(options_.max_retry, max_delay);
  if (v.retry_delay == absl::ZeroDuration()) {
    v.retry_delay = std::min(options_.min_retry, cap);
  } else {
    v.retry_delay = std::min(v.retry_delay * 2, cap);
  }
  v.retry_at = now + v.retry_delay;
}

void RoundRobin::RequestChangeCheck(int volume, absl::Time now) {
  VolumeState& v = volumes_[volume];
  v.next_change_check = std::min(v.next_change_check, now);
  if (v.failed) v.retry_at = std::min(v.retry_at, now);
}

}  // namespace btrdupd
