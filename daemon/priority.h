// Makes btrdupd the lowest-priority process on the machine: CPU nice 19 and the idle
// I/O class, so users never notice it. Called once at start, in one-shot and daemon
// mode, before any volume is touched.

#ifndef BTRDUPD_DAEMON_PRIORITY_H_
#define BTRDUPD_DAEMON_PRIORITY_H_

#include "absl/status/status.h"

namespace btrdupd {

// Sets nice 19 (setpriority) and the idle I/O class (ioprio_set) for this process.
// Both are attempted; the error names what failed. A failure is worth a warning, not
// a reason to stop.
absl::Status LowerOwnPriority();

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_PRIORITY_H_
