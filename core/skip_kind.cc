#include "core/skip_kind.h"

#include <cerrno>

#include "ioctl/errno_status.h"

namespace btrdupd {

absl::string_view SkipKindName(SkipKind kind) {
  switch (kind) {
    case SkipKind::kUnknown: return "unknown";
    case SkipKind::kImmutable: return "immutable";
    case SkipKind::kAppendOnly: return "append_only";
    case SkipKind::kSwapfile: return "swapfile";
    case SkipKind::kNotPermitted: return "not_permitted";
    case SkipKind::kNodatasumMismatch: return "nodatasum_mismatch";
    case SkipKind::kHardLink: return "hard_link";
    case SkipKind::kReceivedSnapshot: return "received_snapshot";
    case SkipKind::kReadOnly: return "read_only";
    case SkipKind::kIoError: return "io_error";
    case SkipKind::kUnreadable: return "unreadable";
    case SkipKind::kNotShared: return "not_shared";
    case SkipKind::kBadReference: return "bad_reference";
    case SkipKind::kDedupeFailed: return "dedupe_failed";
    case SkipKind::kAllHoles: return "all_holes";
  }
  return "unknown";
}

absl::string_view SkipKindDescription(SkipKind kind) {
  switch (kind) {
    case SkipKind::kUnknown: return "skipped by an older btrdupd";
    case SkipKind::kImmutable: return "immutable (chattr +i)";
    case SkipKind::kAppendOnly: return "append-only (chattr +a)";
    case SkipKind::kSwapfile: return "active swap file";
    case SkipKind::kNotPermitted: return "dedupe not permitted";
    case SkipKind::kNodatasumMismatch: return "NOCOW and checksummed copies";
    case SkipKind::kHardLink: return "hard link of a handled inode";
    case SkipKind::kReceivedSnapshot: return "in a received read-only snapshot";
    case SkipKind::kReadOnly: return "read-only (mount or snapshot)";
    case SkipKind::kIoError: return "I/O error";
    case SkipKind::kUnreadable: return "cannot be read";
    case SkipKind::kNotShared: return "not shared after dedupe (FIEMAP)";
    case SkipKind::kBadReference: return "unusable as reference";
    case SkipKind::kDedupeFailed: return "dedupe failed";
    case SkipKind::kAllHoles: return "only holes (sparse): nothing to share";
  }
  return "unknown";
}

std::optional<SkipKind> SkipKindFromNumber(int64_t value) {
  for (SkipKind kind : kAllSkipKinds) {
    if (static_cast<int64_t>(kind) == value) return kind;
  }
  return std::nullopt;
}

SkipKind SkipKindOfError(const absl::Status& error, SkipKind otherwise) {
  const std::optional<int> err = ErrnoOf(error);
  if (!err.has_value()) return absl::IsDataLoss(error) ? SkipKind::kIoError : otherwise;
  switch (*err) {
    case EIO:
    case EUCLEAN:
      return SkipKind::kIoError;
    case EPERM:
    case EACCES:
      return SkipKind::kNotPermitted;
    case EROFS:
      return SkipKind::kReadOnly;
    case ETXTBSY:
      return SkipKind::kSwapfile;
    default:
      return otherwise;
  }
}

}  // namespace btrdupd
