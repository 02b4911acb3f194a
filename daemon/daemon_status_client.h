// `btrdupd --daemon-status VOLUME...`: asks the running daemon how each volume is doing.
//
// Connects to the volume's status socket (<socket-dir>/<volumename>.sock, the same name
// the daemon derives from the mount path), sends "status", and prints the reply: a few
// aligned lines for people, or with --json the raw JSON line (for scripts and
// monitoring). No daemon serving the volume: a clear message on stderr and exit code 3
// (1 if only some volumes had no daemon). Needs root, like the socket.

#ifndef BTRDUPD_DAEMON_DAEMON_STATUS_CLIENT_H_
#define BTRDUPD_DAEMON_DAEMON_STATUS_CLIENT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/status_json.h"

namespace btrdupd {

// --daemon-status was given.
bool DaemonStatusRequested();

// Prints the status of each volume (flags: --json, --socket-dir). Returns the exit code.
int RunDaemonStatus(const std::vector<std::string>& volumes);

// The reply rendered for people. InvalidArgument if `reply` is not a status object
// (an {"error": ...} reply comes back as that error's text).
absl::StatusOr<std::string> FormatStatusForPeople(const JsonValue& reply);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_DAEMON_STATUS_CLIENT_H_
