// SkipKind: why the engine left a file alone for good (DedupeState::kSkipped), as a kind
// a program can count and branch on, stored in the index next to a free-text detail for
// people (the path of the other hard link, the kernel's message, ...). Nothing parses
// the detail back.
//
// The numeric values are stored in the database: never renumber; add new kinds at the
// end. Names (SkipKindName) are stable too: they appear in `--status --json`, in
// metrics labels and in logs.
//
// Not skipped, so no kind: a file that vanished (removed from the index), changed
// (waits again), or was busy (EAGAIN while `btrfs send` runs, EBUSY: tried again next
// pass).

#ifndef BTRDUPD_CORE_SKIP_KIND_H_
#define BTRDUPD_CORE_SKIP_KIND_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace btrdupd {

enum class SkipKind {
  kUnknown = 0,           // a skip recorded without a kind (not made by this version)
  kImmutable = 1,         // chattr +i: cannot be changed
  kAppendOnly = 2,        // chattr +a: cannot be changed
  kSwapfile = 3,          // an active swap file: never read or deduped (ETXTBSY)
  kNotPermitted = 4,      // the kernel refused the dedupe (EPERM, EACCES)
  kNodatasumMismatch = 5, // NOCOW (nodatasum) and checksummed copies cannot share extents
  kHardLink = 6,          // another name of an inode already handled: nothing to share
  kReceivedSnapshot = 7,  // in a read-only received snapshot: never a destination
  kReadOnly = 8,          // EROFS: a read-only mount, or a snapshot that cannot be flipped
  kIoError = 9,           // EIO (or other data loss) reading or deduping it
  kUnreadable = 10,       // cannot be opened, read or examined (other errors)
  kNotShared = 11,        // the backend said done, but FIEMAP shows it does not share
  kBadReference = 12,     // as reference, the whole request failed (its copies wait)
  kDedupeFailed = 13,     // the backend failed on it for another reason
  kAllHoles = 14,         // sparse, only holes: no data on disk, nothing to share
};

// Every kind, in numeric order (for summaries that list all of them).
inline constexpr std::array<SkipKind, 15> kAllSkipKinds = {
    SkipKind::kUnknown,          SkipKind::kImmutable,        SkipKind::kAppendOnly,
    SkipKind::kSwapfile,         SkipKind::kNotPermitted,     SkipKind::kNodatasumMismatch,
    SkipKind::kHardLink,         SkipKind::kReceivedSnapshot, SkipKind::kReadOnly,
    SkipKind::kIoError,          SkipKind::kUnreadable,       SkipKind::kNotShared,
    SkipKind::kBadReference,     SkipKind::kDedupeFailed,     SkipKind::kAllHoles,
};

// Files skipped, by kind.
class SkipCounts {
 public:
  void Add(SkipKind kind, int64_t n = 1) { by_kind_[static_cast<size_t>(kind)] += n; }
  int64_t of(SkipKind kind) const { return by_kind_[static_cast<size_t>(kind)]; }
  int64_t total() const {
    int64_t sum = 0;
    for (int64_t n : by_kind_) sum += n;
    return sum;
  }
  SkipCounts& operator+=(const SkipCounts& other) {
    for (size_t i = 0; i < by_kind_.size(); ++i) by_kind_[i] += other.by_kind_[i];
    return *this;
  }
  bool operator==(const SkipCounts& other) const { return by_kind_ == other.by_kind_; }

 private:
  std::array<int64_t, kAllSkipKinds.size()> by_kind_{};
};

// "immutable", "append_only", "swapfile", "not_permitted", "nodatasum_mismatch",
// "hard_link", "received_snapshot", "read_only", "io_error", "unreadable",
// "not_shared", "bad_reference", "dedupe_failed", "all_holes", "unknown".
absl::string_view SkipKindName(SkipKind kind);

// A few words for people ("immutable (chattr +i)").
absl::string_view SkipKindDescription(SkipKind kind);

// The kind stored as `value`; nullopt for a number this version does not know.
std::optional<SkipKind> SkipKindFromNumber(int64_t value);

// The kind for a failure of an operation on the file, by the errno it carries
// (ioctl/errno_status.h): EIO/EUCLEAN (or DataLoss without errno) -> kIoError,
// EPERM/EACCES -> kNotPermitted, EROFS -> kReadOnly, ETXTBSY -> kSwapfile, anything
// else -> `otherwise`.
SkipKind SkipKindOfError(const absl::Status& error, SkipKind otherwise);

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_SKIP_KIND_H_
