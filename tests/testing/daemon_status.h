// Asking a daemon a test started for its status (the status socket's "status" reply), and
// reading figures out of the parsed reply.
//
// Thread-safe (no state).

#ifndef BTRDUPD_TESTS_TESTING_DAEMON_STATUS_H_
#define BTRDUPD_TESTS_TESTING_DAEMON_STATUS_H_

#include <string>

#include "absl/strings/string_view.h"
#include "daemon/json.h"

namespace btrdupd {
namespace testing {

// The reply of the daemon listening at `socket_path`, parsed; a null value when it does
// not answer within 30 s or the reply is not JSON.
JsonValue QueryDaemonStatus(const std::string& socket_path);

// v[key] as a number; -1 when it is missing or not a number.
double JsonNumberAt(const JsonValue& v, absl::string_view key);

// v[key] as a string; "" when it is missing or not a string.
std::string JsonStringAt(const JsonValue& v, absl::string_view key);

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_DAEMON_STATUS_H_
