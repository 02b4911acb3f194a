// Turns an errno value into an absl::Status whose code callers can branch on, and
// carries the errno itself so a caller that must tell two errnos of one code apart
// (EROFS from ETXTBSY, both FailedPrecondition) asks ErrnoOf() instead of reading
// the message. No decision anywhere may depend on a status's message text.
//
// The message is "<context>: <strerror(err)>", so context should name the
// operation and the path (or whatever is known), e.g. "open /mnt/a/b".
//
// Codes, chosen for what a caller can do about the failure:
//   ENOENT, ENOTDIR, ESRCH              -> NotFound
//   EACCES, EPERM                       -> PermissionDenied
//   EINVAL, EBADF, ENAMETOOLONG, EISDIR,
//   EXDEV                               -> InvalidArgument
//   EEXIST, ENOTEMPTY                   -> AlreadyExists / FailedPrecondition
//   EROFS, ETXTBSY, ENOTTY              -> FailedPrecondition
//   EAGAIN, EBUSY, EINTR                -> Unavailable (try again later)
//   ENOSPC, EDQUOT, ENOMEM, EMFILE,
//   ENFILE, EFBIG, EOVERFLOW            -> ResourceExhausted / OutOfRange
//   EOPNOTSUPP, ENOSYS                  -> Unimplemented
//   EIO, EUCLEAN                        -> DataLoss
//   anything else                       -> absl::ErrnoToStatusCode(err)
//
// Every status made here carries the errno as a payload (kErrnoPayloadUrl, the decimal
// value); fakes in tests make their errors here too, so the engine sees the same thing
// from a fake as from the kernel.
//
// Note: absl has an absl::ErrnoToStatus with the same parameter types. When
// the context argument is an absl::string_view variable, argument-dependent
// lookup finds both; qualify the call as btrdupd::ErrnoToStatus.

#ifndef BTRDUPD_IOCTL_ERRNO_STATUS_H_
#define BTRDUPD_IOCTL_ERRNO_STATUS_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace btrdupd {

// The payload type URL under which the errno travels.
inline constexpr char kErrnoPayloadUrl[] = "type.btrdupd/errno";

// REQUIRES: err != 0.
absl::StatusCode ErrnoToStatusCode(int err);

// "<context>: <strerror(err)>", code from ErrnoToStatusCode, errno attached.
// REQUIRES: err != 0.
absl::Status ErrnoToStatus(int err, absl::string_view context);

// The same code and errno, with a message the caller wrote whole (when the errno text
// belongs in the middle, or comes from another program's report).
// REQUIRES: err != 0.
absl::Status ErrnoToStatusWithMessage(int err, absl::string_view message);

// `status` with `err` attached (for a status made elsewhere whose cause is known).
absl::Status WithErrno(absl::Status status, int err);

// The errno a status carries, if it was made from one.
std::optional<int> ErrnoOf(const absl::Status& status);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_ERRNO_STATUS_H_
