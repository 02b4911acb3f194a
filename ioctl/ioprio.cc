#include "ioctl/ioprio.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace {

// From include/uapi/linux/ioprio.h (not shipped by every libc).
constexpr int kIoprioClassShift = 13;
constexpr int kIoprioClassIdle = 3;
constexpr int kIoprioWhoProcess = 1;

}  // namespace

absl::Status SetIdleIoClass() {
  const int value = kIoprioClassIdle << kIoprioClassShift;
  if (syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, value) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, "ioprio_set(idle) on this process");
  }
  return absl::OkStatus();
}

absl::StatusOr<int> GetIoClass() {
  const long value = syscall(SYS_ioprio_get, kIoprioWhoProcess, 0);
  if (value < 0) {
    const int err = errno;
    return ErrnoToStatus(err, "ioprio_get on this process");
  }
  return static_cast<int>(value >> kIoprioClassShift);
}

}  // namespace btrdupd
