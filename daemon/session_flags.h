// The command-line options that say how a volume is opened, shared by one-shot and
// daemon mode: --db-path, --backend, --force-rescan.

#ifndef BTRDUPD_DAEMON_SESSION_FLAGS_H_
#define BTRDUPD_DAEMON_SESSION_FLAGS_H_

#include "daemon/volume_session.h"

namespace btrdupd {

// SessionOptions with db_dir, backend, force_rescan and test_clock_offset taken from the
// flags; the other
// fields keep their defaults.
SessionOptions SessionOptionsFromFlags();

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_SESSION_FLAGS_H_
