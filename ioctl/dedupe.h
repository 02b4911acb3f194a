// FIDEDUPERANGE: share a range of one file's extents with other files whose
// bytes in that range are identical.
//
// The kernel locks both files, byte-compares the range and only then shares
// it, so a destination that changed since it was hashed is never corrupted:
// it comes back as kDiffers. Requests are split into chunks of
// kDedupeChunkBytes and at most kMaxDedupeTargetsPerCall destinations per
// ioctl; should the kernel report fewer bytes than asked (older kernels
// capped a call at 16 MiB), the next call continues from there.
//
// Kernel rules (fs/remap_range.c), checked here before each call so that a
// violation is an error rather than a silent partial dedupe:
//   - offsets are multiples of the filesystem block size (4 KiB on btrfs);
//   - the length is a multiple of the block size, except that a range ending
//     exactly at EOF of both the source and the destination may include the
//     partial last block -- so dedupe a whole file by passing its exact size
//     (otherwise the kernel quietly shares only the whole blocks and still
//     reports the full length as deduped);
//   - the range lies inside both files;
//   - the source is open for reading; a destination must be writable by the
//     caller, unless the caller has CAP_SYS_ADMIN (root may open it O_RDONLY);
//   - source and destination are on the same filesystem, and the destination
//     is not on a read-only mount (EROFS).
// Note: btrfs dedupes into files of read-only subvolumes and snapshots (the
// bytes are verified equal, so the snapshot's contents cannot change); only
// a read-only mount or a running `btrfs send` (EAGAIN) stops it.
//
// A destination that is resized during the call can defeat the checks; as
// the kernel's own report is coarse, verify the outcome with FIEMAP
// (ioctl/fiemap.h) before relying on it.
//
// Thread-safe: no shared state. Borrowed descriptors must stay open for the
// duration of the call.

#ifndef BTRDUPD_IOCTL_DEDUPE_H_
#define BTRDUPD_IOCTL_DEDUPE_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace btrdupd {

// Bytes asked for in one ioctl per destination (btrfs's own per-call limit,
// BTRFS_MAX_DEDUPE_LEN, in kernels that do not loop internally).
inline constexpr uint64_t kDedupeChunkBytes = uint64_t{16} << 20;

// Destinations per ioctl: the argument must fit in one page (4 KiB, the
// smallest Linux uses): (4096 - 24-byte header) / 32-byte entries.
inline constexpr size_t kMaxDedupeTargetsPerCall = 127;

// A destination: a borrowed descriptor and where its range starts.
struct DedupeTarget {
  int fd = -1;
  uint64_t offset = 0;
};

// What happened to one destination.
struct DedupeResult {
  enum class Kind {
    kDeduped,  // the whole requested range is now shared with the source
    kDiffers,  // the bytes differ from the source (the file changed): stopped
    kFailed,   // refused by the checks below or the kernel; `error` says why
  };
  Kind kind = Kind::kFailed;
  // Bytes from the start of the range the kernel reported shared. For
  // kDiffers and kFailed, the chunks completed before the stop (they stay
  // shared): a multiple of kDedupeChunkBytes.
  uint64_t bytes_deduped = 0;
  // OK unless kind == kFailed. Codes follow ioctl/errno_status.h (EROFS,
  // ETXTBSY -> FailedPrecondition; EPERM -> PermissionDenied; EAGAIN ->
  // Unavailable; EINVAL, EXDEV -> InvalidArgument); the message names both
  // files, the offsets and a hint at the cause.
  absl::Status error;
};

// Shares [src_offset, src_offset + length) of `src_fd` with
// [target.offset, target.offset + length) of each target. Returns one
// result per target, in order. Fails as a whole (and does nothing) only when
// the source cannot be used: not a regular file or an unaligned src_offset
// (InvalidArgument), or the range extends past its end (OutOfRange). A
// target that breaks the rules above is kFailed without a kernel call:
// InvalidArgument (not a regular file, unaligned), OutOfRange (the range
// extends past its end). A length of 0 reports every usable target kDeduped.
absl::StatusOr<std::vector<DedupeResult>> DedupeRange(int src_fd, uint64_t src_offset,
                                                      uint64_t length,
                                                      absl::Span<const DedupeTarget> targets);

// Shares [0, length) of `src_fd` with [0, length) of each of `dest_fds`.
// To share whole files pass their exact size (see the EOF rule above); a
// destination whose size is not `length` then fails (it changed). Of a sparse
// source only the data ranges (SEEK_DATA/SEEK_HOLE, widened to whole blocks) are
// shared: holes hold no extents, and comparing them would read zeros for as long
// as the hole is. bytes_deduped then counts the data ranges.
absl::StatusOr<std::vector<DedupeResult>> DedupeFile(int src_fd, uint64_t length,
                                                     absl::Span<const int> dest_fds);

// The data ranges of the first `length` bytes of `fd` (SEEK_DATA/SEEK_HOLE), widened
// to whole blocks, merged, in order; [0, length) when the kernel says nothing of holes.
std::vector<std::pair<uint64_t, uint64_t>> DataRanges(int fd, uint64_t length);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_DEDUPE_H_
