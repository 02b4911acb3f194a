// The few files btrdupd trusts inside a volume users write to: its `.btrdupd.conf` and
// the directory of its database. Such a file is only used if it is what root put there:
// it is looked at without following a symlink and without opening it (O_PATH), and it
// must be a regular file (a directory for OpenTrustedDirectory) owned by root (or by the
// user btrdupd runs as), not writable by group or others. A regular file is then opened
// through that descriptor (no second path lookup), O_NONBLOCK: a FIFO or device in its
// place is never opened and never blocks.
//
// Errors: NotFound when nothing is there; FailedPrecondition when something is there
// that is not trusted, with a message that names it, says what is wrong and how to fix
// it; other codes from errno (ioctl/errno_status.h).
//
// Thread-safe.

#ifndef BTRDUPD_IOCTL_TRUSTED_FILE_H_
#define BTRDUPD_IOCTL_TRUSTED_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {

// The contents of `path`, read through a descriptor opened after the checks above.
// OutOfRange when it holds more than `max_bytes` (what is read stops there).
absl::StatusOr<std::string> ReadTrustedFile(const std::string& path, size_t max_bytes);

// `path` as an O_PATH descriptor if it is a directory (not a symlink) owned by root (or
// the running user) and not writable by group or others: name files in it through the
// descriptor (`/proc/self/fd/N/name`, or *at() calls), so a directory
// put in its place afterwards is never used.
absl::StatusOr<UniqueFd> OpenTrustedDirectory(const std::string& path);

}  // namespace btrdupd

#endif  // BTRDUPD_IOCTL_TRUSTED_FILE_H_
