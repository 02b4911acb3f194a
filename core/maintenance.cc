#include "core/maintenance.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace btrdupd {
namespace {

absl::Time NextAfter(absl::Time since, const std::optional<absl::Time>& last,
                     absl::Duration interval) {
  if (interval <= absl::ZeroDuration()) return absl::InfiniteFuture();
  return (last.has_value() ? *last : since) + interval;
}

absl::StatusOr<std::optional<absl::Time>> ReadTime(VolumeIndex& index,
                                                   absl::string_view key) {
  absl::StatusOr<std::optional<std::string>> value = index.GetMeta(key);
  if (!value.ok()) return value.status();
  if (!value->has_value()) return std::optional<absl::Time>();
  absl::StatusOr<absl::Time> t = ParseMetaTime(key, **value);
  if (!t.ok()) return t.status();
  return std::optional<absl::Time>(*t);
}

}  // namespace

MaintenancePolicy MaintenancePolicyOf(const VolumeConfig& config) {
  MaintenancePolicy policy;
  policy.vacuum_interval = absl::Hours(24) * config.vacuum_interval_days;
  policy.dedupe_reset_interval = absl::Hours(24) * config.dedup_reset_interval_days;
  return policy;
}

absl::Time NextVacuum(const MaintenanceTimes& times, const MaintenancePolicy& policy) {
  return NextAfter(times.since, times.last_vacuum, policy.vacuum_interval);
}

absl::Time NextDedupeReset(const MaintenanceTimes& times,
                           const MaintenancePolicy& policy) {
  return NextAfter(times.since, times.last_dedupe_reset, policy.dedupe_reset_interval);
}

absl::Time NextMaintenance(const MaintenanceTimes& times,
                           const MaintenancePolicy& policy) {
  return std::min(NextVacuum(times, policy), NextDedupeReset(times, policy));
}

MaintenanceTask DueMaintenance(const MaintenanceTimes& times,
                               const MaintenancePolicy& policy, absl::Time now) {
  if (NextDedupeReset(times, policy) <= now) return MaintenanceTask::kDedupeReset;
  if (NextVacuum(times, policy) <= now) return MaintenanceTask::kVacuum;
  return MaintenanceTask::kNone;
}

bool VacuumAfterPass(bool full_scan, int64_t files_seen, int64_t files_added) {
  return full_scan && files_added >= kVacuumAfterFilesAdded && files_added * 2 >= files_seen;
}

bool VacuumForFreePages(const VolumeIndex::FileSpace& space) {
  return space.free_bytes >= kVacuumFreeBytes && space.free_bytes * 4 >= space.bytes;
}

absl::StatusOr<MaintenanceTimes> LoadMaintenanceTimes(VolumeIndex& index,
                                                      absl::Time now) {
  MaintenanceTimes times;
  absl::StatusOr<std::optional<absl::Time>> since =
      ReadTime(index, kMetaMaintenanceSince);
  if (!since.ok()) return since.status();
  if (since->has_value()) {
    times.since = **since;
  } else {
    absl::Status st = index.SetMeta(kMetaMaintenanceSince, FormatMetaTime(now));
    if (!st.ok()) return st;
    times.since = now;
  }
  absl::StatusOr<std::optional<absl::Time>> vacuum = ReadTime(index, kMetaLastVacuum);
  if (!vacuum.ok()) return vacuum.status();
  times.last_vacuum = *vacuum;
  absl::StatusOr<std::optional<absl::Time>> reset = ReadTime(index, kMetaLastDedupeReset);
  if (!reset.ok()) return reset.status();
  times.last_dedupe_reset = *reset;
  // A time recorded before the wall clock was stepped back counts as now, so the next
  // job is due at most one interval from now, not the size of the step later.
  times.since = std::min(times.since, now);
  if (times.last_vacuum.has_value()) times.last_vacuum = std::min(*times.last_vacuum, now);
  if (times.last_dedupe_reset.has_value()) {
    times.last_dedupe_reset = std::min(*times.last_dedupe_reset, now);
  }
  return times;
}

absl::Status RunMaintenance(VolumeIndex& index, MaintenanceTask task, absl::Time now) {
  switch (task) {
    case MaintenanceTask::kNone:
      return absl::OkStatus();
    case MaintenanceTask::kDedupeReset: {
      absl::Status st = index.ResetDedupeStates();
      if (!st.ok()) return st;
      return index.SetMeta(kMetaLastDedupeReset, FormatMetaTime(now));
    }
    case MaintenanceTask::kVacuum: {
      absl::Status st = index.Vacuum();
      if (!st.ok()) return st;
      return index.SetMeta(kMetaLastVacuum, FormatMetaTime(now));
    }
  }
  return absl::OkStatus();
}

std::string FormatMetaTime(absl::Time t) { return absl::StrCat(absl::ToUnixSeconds(t)); }

absl::StatusOr<absl::Time> ParseMetaTime(absl::string_view key, absl::string_view value) {
  int64_t seconds = 0;
  if (!absl::SimpleAtoi(value, &seconds)) {
    return absl::DataLossError(absl::StrCat("index metadata '", key,
                                            "' is not a time in Unix seconds: '", value,
                                            "'"));
  }
  return absl::FromUnixSeconds(seconds);
}

}  // namespace btrdupd
