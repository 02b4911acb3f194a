// Daemon mode: `btrdupd --daemon VOLUME...` serves every volume for as long as it runs.
//
// One process, one processing thread. Volumes are served round-robin (core/round_robin.h),
// one unit of work per volume per turn: an incremental pass, one file hashed, one group
// deduped, one maintenance job. Between units the thread polls, without blocking, the
// signal descriptor (daemon/signals.h) and every volume's status socket
// (daemon/status_server.h). When no volume has anything due it sleeps in poll() on the
// same descriptors until the earliest next-eligible file, change check, retry or
// maintenance time: no busy loop, no timer ticking while idle (at most one wake-up
// every 10 minutes to notice wall-clock jumps).
//
//   - Change detection every --scan-interval (default 60 s); the scanner decides when a
//     full scan is due (first run, generation gap at full_scan_hour, --force-rescan).
//   - A volume that cannot be opened, disappears (unmounted) or fails is logged and
//     retried with a doubling delay (30 s up to 1 h); the others go on.
//   - Each volume is locked (daemon/instance_lock.h) for as long as it is open. If
//     another btrdupd holds a volume at start-up, the daemon exits at once (exit code 3)
//     with a message naming the holder's pid.
//   - --metrics-file: the Prometheus metrics of every volume (daemon/metrics.h), written
//     at start and every minute (of the daemon's clock) after.
//   - SIGTERM/SIGINT: the current unit finishes (a scan stops between directories),
//     every session is closed (committed, read-only flags restored), exit 0.
//     SIGHUP: every open volume re-reads its .btrdupd.conf.
//
// Exit codes: 0 after SIGTERM/SIGINT; 2 usage; 3 when the daemon cannot start
// (signals, socket directory, a volume held by another btrdupd, a socket another
// daemon answers on).

#ifndef BTRDUPD_DAEMON_DAEMON_LOOP_H_
#define BTRDUPD_DAEMON_DAEMON_LOOP_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "daemon/status_server.h"
#include "daemon/volume_session.h"

namespace btrdupd {

// One unit of daemon work hashes at most this much of one file (a larger file is hashed
// over several units, its state kept between them), so the status sockets and the other
// volumes get their turns while a 100 GiB file is hashed.
inline constexpr uint64_t kDaemonHashSliceBytes = uint64_t{128} << 20;
inline constexpr absl::Duration kDaemonHashSliceTime = absl::Milliseconds(500);

struct DaemonOptions {
  SessionOptions session;
  std::string socket_dir = kDefaultSocketDir;
  absl::Duration scan_interval = absl::Seconds(60);
  absl::Duration min_retry = absl::Seconds(30);
  absl::Duration max_retry = absl::Hours(1);
  std::string metrics_file;  // "" = none; else written every metrics_interval
  absl::Duration metrics_interval = absl::Minutes(1);
  // Tests and benchmarks only: see daemon/scaled_clock.h.
  double time_scale = 1.0;
};

// --daemon was given.
bool DaemonModeRequested();

// DaemonOptions from --socket-dir, --scan-interval, --metrics-file, --test-time-scale
// and the shared session flags (--db-dir, --backend, --force-rescan).
DaemonOptions DaemonOptionsFromFlags();

// Runs until SIGTERM/SIGINT. Returns the exit code (see above).
int RunDaemon(const std::vector<std::string>& volumes, const DaemonOptions& options);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_DAEMON_LOOP_H_
