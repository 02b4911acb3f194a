// Private to core/dedupe_engine*.cc: status macros and small shared helpers.
// Nothing outside the engine includes this.

#ifndef BTRDUPD_CORE_DEDUPE_ENGINE_INTERNAL_H_
#define BTRDUPD_CORE_DEDUPE_ENGINE_INTERNAL_H_

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "core/dedupe_engine.h"
#include "core/file_access.h"
#include "core/index.h"

#define BTRDUPD_ENGINE_CONCAT_INNER(a, b) a##b
#define BTRDUPD_ENGINE_CONCAT(a, b) BTRDUPD_ENGINE_CONCAT_INNER(a, b)
#define BTRDUPD_ENGINE_ASSIGN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
// ASSIGN_OR_RETURN(lhs, expr): lhs = *expr, or return expr's error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  BTRDUPD_ENGINE_ASSIGN_IMPL(BTRDUPD_ENGINE_CONCAT(status_or_, __LINE__), lhs, expr)
#define RETURN_IF_ERROR(expr)          \
  do {                                 \
    absl::Status status_ = (expr);     \
    if (!status_.ok()) return status_; \
  } while (false)

namespace btrdupd {

// One (size, hash, NOCOW) group being processed.
struct DedupeEngine::Group {
  uint64_t size = 0;
  std::string hash;
  std::vector<FileRecord> members;  // ascending id
};

namespace engine_internal {

inline constexpr uint64_t kTopLevelSubvolume = 5;
// How many differently hashed members a file is compared with (FIEMAP) before it is
// read, to copy the hash of a member it already shares all extents with.
inline constexpr int kMaxHashCopyChecks = 8;

// The file at the path is still the one the index recorded.
inline bool Matches(const FileStat& stat, const FileRecord& file) {
  return stat.size == file.size && stat.mtime_ns == file.mtime_ns && stat.ino == file.ino;
}

// A member that still needs dedupe work against the reference `ref_id`.
inline bool NeedsDedupe(const FileRecord& m, int64_t ref_id) {
  switch (m.dedupe_state) {
    case DedupeState::kPending:
    case DedupeState::kUnique:  // matched nothing before; a new copy changes that
      return true;
    case DedupeState::kDeduped:
      return m.reference_id != ref_id;
    case DedupeState::kReference:
      return m.id != ref_id;
    case DedupeState::kSkipped:
      return false;
  }
  return false;
}

// The backend's error is EROFS. Both backends keep strerror's text in the message (the
// native one under FailedPrecondition, which ETXTBSY and ENOTTY share; duperemove's
// report verbatim), so the text is what tells it apart.
inline bool IsReadOnlyRefusal(const absl::Status& error) {
  return !error.ok() && absl::StrContains(error.message(), std::strerror(EROFS));
}

// A subvolume whose read-only flag the engine may clear for a moment, if the kernel
// refused a dedupe into it with EROFS (older kernels): a read-only snapshot, not
// received, on a writable mount.
inline bool FlipEligible(const SubvolumeFlags& flags) {
  return flags.read_only && !flags.received && !flags.on_read_only_mount;
}

}  // namespace engine_internal
}  // namespace btrdupd

#endif  // BTRDUPD_CORE_DEDUPE_ENGINE_INTERNAL_H_
