// The command-line options that say how a volume is opened, shared by one-shot and
// daemon mode: --db-dir (and --db-path, its old name), --backend, --force-rescan.

#ifndef BTRDUPD_DAEMON_SESSION_FLAGS_H_
#define BTRDUPD_DAEMON_SESSION_FLAGS_H_

#include <set>
#include <string>

#include "absl/status/status.h"
#include "daemon/volume_session.h"

namespace btrdupd {

// OK unless `given` (flag names as Abseil spells them) holds both --db-dir and its old
// name --db-path with values naming different directories ("/a" and "/a/" are one);
// then InvalidArgument naming both, a usage error.
absl::Status CheckDatabaseDirectoryFlags(const std::set<std::string>& given);

// SessionOptions with db_dir (from --db-dir, else --db-path), backend, force_rescan and
// test_clock_offset taken from the flags; the other fields keep their defaults.
SessionOptions SessionOptionsFromFlags();

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_SESSION_FLAGS_H_
