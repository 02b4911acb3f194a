// StabilityPolicy: how long a new or changed file must stay unchanged before btrdupd
// hashes it, and how that wait grows for files that keep changing.
//
// A file first seen (backoff level 0) waits `initial_wait`. Each change seen after that
// raises its level by one and makes it wait initial_wait * 2^level, capped at
// `max_backoff`. The level goes back to 0 once the file has been processed (see
// core/index.h, ObserveFile and SetHash). Values come from .btrdupd.conf
// (core/config.h, ToStabilityPolicy).

#ifndef BTRDUPD_CORE_STABILITY_H_
#define BTRDUPD_CORE_STABILITY_H_

#include "absl/time/time.h"

namespace btrdupd {

struct StabilityPolicy {
  absl::Duration initial_wait = absl::Minutes(5);
  absl::Duration max_backoff = absl::Hours(72);
};

// The levels above this no longer change the wait's exponent (2^40 * anything > cap).
inline constexpr int kMaxBackoffExponent = 40;

// The wait a file at `level` (>= 0) gets: min(initial_wait * 2^level, max_backoff),
// never less than initial_wait... unless max_backoff is smaller, which then wins.
inline absl::Duration WaitForLevel(const StabilityPolicy& policy, int level) {
  if (level < 0) level = 0;
  if (level > kMaxBackoffExponent) level = kMaxBackoffExponent;
  absl::Duration wait = policy.initial_wait;
  for (int i = 0; i < level && wait < policy.max_backoff; ++i) wait *= 2;
  return wait < policy.max_backoff ? wait : policy.max_backoff;
}

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_STABILITY_H_
