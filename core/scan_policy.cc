#include "core/scan_policy.h"

#include <algorithm>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"

namespace btrdupd {

absl::StatusOr<FullScanState> LoadFullScanState(VolumeIndex* index) {
  FullScanState state;
  absl::StatusOr<std::optional<std::string>> last = index->GetMeta(kMetaLastFullScan);
  if (!last.ok()) return last.status();
  int64_t seconds = 0;
  if (last->has_value() && absl::SimpleAtoi(**last, &seconds)) {
    state.ever_completed = true;
    state.last_full = absl::FromUnixSeconds(seconds);
  }
  absl::StatusOr<std::optional<std::string>> pending = index->GetMeta(kMetaFullScanPending);
  if (!pending.ok()) return pending.status();
  state.pending = pending->has_value() && **pending == "1";
  absl::StatusOr<std::optional<std::string>> wanted = index->GetMeta(kMetaFullScanWanted);
  if (!wanted.ok()) return wanted.status();
  state.wanted = wanted->has_value() && !(*wanted)->empty();
  absl::StatusOr<std::optional<std::string>> since = index->GetMeta(kMetaFullScanWantedSince);
  if (!since.ok()) return since.status();
  if (since->has_value() && absl::SimpleAtoi(**since, &seconds)) {
    state.wanted_since = absl::FromUnixSeconds(seconds);
  }
  return state;
}

absl::Time NextFullScanTime(const FullScanState& state, const VolumeConfig& config,
                            absl::Time now, absl::TimeZone zone) {
  if (!state.ever_completed || state.pending) return now;
  if (!state.wanted) return absl::InfiniteFuture();
  // A last full scan recorded "in the future" (the clock was stepped back since) counts
  // as now: the wait is min_hours_between_full_scans, not that plus the step.
  absl::Time earliest = std::min(state.last_full, now) +
                        absl::Hours(config.min_hours_between_full_scans);
  if (earliest < now) earliest = now;
  const absl::TimeZone::CivilInfo info = zone.At(earliest);
  if (info.cs.hour() == config.full_scan_hour) return earliest;
  absl::CivilHour candidate(info.cs.year(), info.cs.month(), info.cs.day(),
                            config.full_scan_hour);
  if (candidate < absl::CivilHour(info.cs)) candidate += 24;
  // The first instant of that local hour (a skipped hour at a DST change maps forward).
  return zone.At(absl::CivilSecond(candidate)).pre;
}

absl::Time MissedFullScanTime(const FullScanState& state, const VolumeConfig& config,
                              absl::Time now, absl::TimeZone zone) {
  if (!state.wanted || !state.ever_completed || state.pending) return absl::InfiniteFuture();
  absl::Time from = state.wanted_since;
  if (from == absl::InfinitePast()) from = state.last_full;  // recorded by an older release
  return NextFullScanTime(state, config, std::min(from, now), zone);
}

absl::StatusOr<absl::Time> NextFullScanDue(VolumeIndex* index, const VolumeConfig& config,
                                           absl::Time now, absl::TimeZone zone) {
  absl::StatusOr<FullScanState> state = LoadFullScanState(index);
  if (!state.ok()) return state.status();
  return NextFullScanTime(*state, config, now, zone);
}

}  // namespace btrdupd
