// The btrdupd version string, printed by --version and reported by the status socket.

#ifndef BTRDUPD_DAEMON_VERSION_H_
#define BTRDUPD_DAEMON_VERSION_H_

namespace btrdupd {

inline constexpr char kBtrdupdVersion[] = "0.1.0";

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_VERSION_H_
