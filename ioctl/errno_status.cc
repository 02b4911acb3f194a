#include "ioctl/errno_status.h"

#include <errno.h>
#include <string.h>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace btrdupd {

absl::StatusCode ErrnoToStatusCode(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ESRCH:
      return absl::StatusCode::kNotFound;
    case EACCES:
    case EPERM:
      return absl::StatusCode::kPermissionDenied;
    case EINVAL:
    case EBADF:
    case ENAMETOOLONG:
    case EISDIR:
    case EXDEV:
      return absl::StatusCode::kInvalidArgument;
    case EEXIST:
      return absl::StatusCode::kAlreadyExists;
    case ENOTEMPTY:
    case EROFS:
    case ETXTBSY:
    case ENOTTY:
      return absl::StatusCode::kFailedPrecondition;
    case EAGAIN:
    case EBUSY:
    case EINTR:
      return absl::StatusCode::kUnavailable;
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return absl::StatusCode::kResourceExhausted;
    case EFBIG:
    case EOVERFLOW:
      return absl::StatusCode::kOutOfRange;
    case EOPNOTSUPP:
    case ENOSYS:
      return absl::StatusCode::kUnimplemented;
    case EIO:
    case EUCLEAN:
      return absl::StatusCode::kDataLoss;
    default:
      return absl::ErrnoToStatusCode(err);
  }
}

absl::Status ErrnoToStatus(int err, absl::string_view context) {
  return ErrnoToStatusWithMessage(err, absl::StrCat(context, ": ", strerror(err)));
}

absl::Status ErrnoToStatusWithMessage(int err, absl::string_view message) {
  return WithErrno(absl::Status(ErrnoToStatusCode(err), message), err);
}

absl::Status WithErrno(absl::Status status, int err) {
  if (!status.ok()) status.SetPayload(kErrnoPayloadUrl, absl::Cord(absl::StrCat(err)));
  return status;
}

std::optional<int> ErrnoOf(const absl::Status& status) {
  auto payload = status.GetPayload(kErrnoPayloadUrl);
  if (!payload.has_value()) return std::nullopt;
  int err = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &err)) return std::nullopt;
  return err;
}

}  // namespace btrdupd
