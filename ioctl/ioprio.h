// The ioprio_set(2) system call, which glibc does not wrap: the I/O scheduling class
// of the calling process.

#ifndef BTRDUPD_IOCTL_IOPRIO_H_
#define BTRDUPD_IOCTL_IOPRIO_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace btrdupd {

// Puts the calling process (all its threads) in the idle I/O class: it gets disk time
// only when no other process wants it. Errors carry the errno text.
absl::Status SetIdleIoClass();

// The calling process's I/O class as the kernel reports it: 0 none, 1 realtime,
// 2 best-effort, 3 idle.
absl::StatusOr<int> GetIoClass();

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_IOPRIO_H_
