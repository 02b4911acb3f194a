// Turns an errno value into an absl::Status whose code callers can branch on.
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
// Note: absl has an absl::ErrnoToStatus with the same parameter types. When
// the context argument is an absl::string_view variable, argument-dependent
// lookup finds both; qualify the call as btrdupd::ErrnoToStatus.

#ifndef BTRDUPD_IOCTL_ERRNO_STATUS_H_
#define BTRDUPD_IOCTL_ERRNO_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace btrdupd {

// REQUIRES: err != 0.
absl::StatusCode ErrnoToStatusCode(int err);

// REQUIRES: err != 0.
absl::Status ErrnoToStatus(int err, absl::string_view context);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_ERRNO_STATUS_H_
