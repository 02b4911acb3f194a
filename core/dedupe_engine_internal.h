// Private to core/dedupe_engine*.cc: small shared helpers.
// Nothing outside the engine includes this.

#ifndef BTRDUPD_CORE_DEDUPE_ENGINE_INTERNAL_H_
#define BTRDUPD_CORE_DEDUPE_ENGINE_INTERNAL_H_

#include <cerrno>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/dedupe_engine.h"
#include "core/file_access.h"
#include "core/index.h"
#include "core/status_macros.h"
#include "ioctl/errno_status.h"

namespace btrdupd {

namespace engine_internal {

inline constexpr uint64_t kTopLevelSubvolume = 5;

// The backend's error is EROFS (both backends attach the errno: ioctl/errno_status.h).
inline bool IsReadOnlyRefusal(const absl::Status& error) { return ErrnoOf(error) == EROFS; }

// A subvolume whose read-only flag the engine may clear for a moment, if the kernel
// refused a dedupe into it with EROFS (older kernels): a read-only snapshot, not
// received, on a writable mount.
inline bool FlipEligible(const SubvolumeFlags& flags) {
  return flags.read_only && !flags.received && !flags.on_read_only_mount;
}

}  // namespace engine_internal
}  // namespace btrdupd

#endif  // BTRDUPD_CORE_DEDUPE_ENGINE_INTERNAL_H_
