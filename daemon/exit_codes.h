// btrdupd's process exit codes, listed in --help. Scripts (cron, backup hooks) branch
// on them, so they never change meaning.

#ifndef BTRDUPD_DAEMON_EXIT_CODES_H_
#define BTRDUPD_DAEMON_EXIT_CODES_H_

namespace btrdupd {

// Every volume was processed (or, with --status, reported).
inline constexpr int kExitOk = 0;
// At least one volume was processed and at least one failed (each failure is logged
// with its volume).
inline constexpr int kExitSomeFailed = 1;
// The command line is wrong: unknown option, bad value, no VOLUME. Nothing was done.
inline constexpr int kExitUsage = 2;
// No volume could be processed (not btrfs, unreadable, not root, bad .btrdupd.conf,
// database refused, backend unavailable ...).
inline constexpr int kExitAllFailed = 3;

// The exit code for a run over `volumes` volumes of which `failed` failed.
inline int ExitCodeFor(int volumes, int failed) {
  if (failed == 0) return kExitOk;
  return failed >= volumes ? kExitAllFailed : kExitSomeFailed;
}

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_EXIT_CODES_H_
