#include "daemon/priority.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "ioctl/ioprio.h"

namespace btrdupd {

absl::Status LowerOwnPriority() {
  std::string problems;
  if (setpriority(PRIO_PROCESS, 0, 19) != 0) {
    absl::StrAppend(&problems, "setpriority(nice 19): ", std::strerror(errno));
  }
  absl::Status io = SetIdleIoClass();
  if (!io.ok()) {
    absl::StrAppend(&problems, problems.empty() ? "" : "; ", io.message());
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("could not lower btrdupd's priority: ", problems));
}

}  // namespace btrdupd
