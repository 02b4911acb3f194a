// btrdupd: finds identical files on btrfs volumes and makes them share their extents.
//
// main() parses the command line (daemon/command_line.h), lowers the process priority
// and hands the volumes to the chosen mode. Exit codes: daemon/exit_codes.h.

#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "core/config.h"
#include "daemon/command_line.h"
#include "daemon/daemon_loop.h"
#include "daemon/daemon_status_client.h"
#include "daemon/exit_codes.h"
#include "daemon/log.h"
#include "daemon/mode_options.h"
#include "daemon/one_shot.h"
#include "daemon/priority.h"
#include "daemon/session_flags.h"
#include "daemon/explain.h"
#include "daemon/status_report.h"
#include "daemon/version.h"

ABSL_DECLARE_FLAG(bool, quiet);  // daemon/one_shot.cc
ABSL_FLAG(bool, help, false, "Print this help and exit.");
ABSL_FLAG(bool, version, false, "Print the version and exit.");
ABSL_FLAG(bool, print_config, false,
          "Print a .btrdupd.conf with every key, its default and what it means,\n"
          "and exit (e.g. btrdupd --print-config > /mnt/data/.btrdupd.conf).");
ABSL_FLAG(bool, verbose, false, "Log debug messages too (every file and group).");

namespace btrdupd {
namespace {

constexpr char kUsage[] = "Usage: btrdupd [OPTIONS] VOLUME...\n";

std::string HelpText() {
  return absl::StrCat(
      kUsage,
      R"(
Finds identical files on btrfs volumes and makes them share their disk extents, so
the copies take the space of one. File contents are never changed: the kernel compares
the bytes under lock before sharing them, and every result is verified with FIEMAP.

VOLUME is the mount point of a btrfs filesystem (or a subvolume of one). Run as root.

One-shot mode (the default): for each VOLUME, find what changed since the last run
(a full scan on the first run), hash the candidate files, dedupe the duplicates,
print a summary line, and exit. Maintenance that came due is done too (VACUUM and
dedupe-state reset after their intervals; a full scan scheduled for full_scan_hour
is made up by a run at another hour, at most one per min_hours_between_full_scans).

Files still being written are not worth hashing: a file becomes eligible
initial_wait_minutes (default 5) after its last change (its ctime/mtime: a file
unchanged for longer is eligible on the first run), longer if it keeps changing.
A one-shot run processes the files that are eligible now and leaves the others for a
later run (the summary says how many wait). From cron or after a backup has finished,
use --no-wait to treat every file as stable now.

Daemon mode (--daemon): serve every VOLUME continuously, one unit of work per volume
per turn, looking for changes every --scan-interval and sleeping when nothing is due.
SIGTERM/SIGINT stop it safely (exit 0), SIGHUP re-reads each .btrdupd.conf.
`btrdupd --daemon-status VOLUME` asks it how that volume is doing (--json: raw).
One btrdupd per volume (per btrfs filesystem and subvolume, whatever --db-dir): a
second one (daemon or one-shot) is refused, naming the pid.

`btrdupd --explain PATH...` says why a file is or is not deduped (tracked or not and
why, its size group, hash state, stability wait and dedupe state; -v lists its
identical files, --json prints one object per path). It reads the database only.

Each volume keeps its state in a database, by default VOLUME/.btrdupd/btrdupd.db,
and its settings in VOLUME/.btrdupd.conf (optional; an invalid file makes btrdupd
refuse that volume, naming the file, line and key).

btrdupd runs at nice 19 in the idle I/O class.

Options:
)",
      FlagsHelp(),
      R"(
Exit codes:
  0  every VOLUME was processed (or reported, with --status; explained, --explain)
  1  some VOLUMEs were processed, at least one failed (see the ERROR lines)
  2  usage error: unknown option, bad option value, an option that means nothing
     in the chosen mode (e.g. --dry-run with --daemon), or no VOLUME; nothing was done
  3  no VOLUME could be processed (not btrfs, unreadable, not root, bad config ...)
)");
}

int UsageError(absl::string_view message) {
  std::fprintf(stderr, "btrdupd: %.*s\n%sTry 'btrdupd --help' for more information.\n",
               static_cast<int>(message.size()), message.data(), kUsage);
  return kExitUsage;
}

int Main(int argc, char** argv) {
  absl::StatusOr<CommandLine> command_line = ParseCommandLine(argc, argv);
  if (!command_line.ok()) return UsageError(command_line.status().message());
  if (absl::GetFlag(FLAGS_help)) {
    std::fputs(HelpText().c_str(), stdout);
    return kExitOk;
  }
  if (absl::GetFlag(FLAGS_version)) {
    std::printf("btrdupd %s\n", kBtrdupdVersion);
    return kExitOk;
  }
  if (absl::GetFlag(FLAGS_print_config)) {
    std::fputs(DefaultConfigText().c_str(), stdout);
    return kExitOk;
  }
  absl::StatusOr<RunMode> mode = ModeOf(command_line->given);
  if (!mode.ok()) return UsageError(mode.status().message());
  absl::Status fits = CheckOptionsForMode(*mode, command_line->given);
  if (!fits.ok()) return UsageError(fits.message());
  absl::Status db_dir = CheckDatabaseDirectoryFlags(command_line->given);
  if (!db_dir.ok()) return UsageError(db_dir.message());
  if (absl::GetFlag(FLAGS_quiet) && absl::GetFlag(FLAGS_verbose)) {
    return UsageError("-q (--quiet) and -v (--verbose) contradict each other: choose one");
  }
  SetVerbose(absl::GetFlag(FLAGS_verbose));
  SetQuiet(absl::GetFlag(FLAGS_quiet));
  const std::vector<std::string>& volumes = command_line->positional;
  if (volumes.empty()) return UsageError("no VOLUME given");

  absl::Status priority = LowerOwnPriority();
  if (!priority.ok()) LogWarning("", "%s", priority.message());

  switch (*mode) {
    case RunMode::kDaemonStatus:
      return RunDaemonStatus(volumes);
    case RunMode::kDaemon:
      return RunDaemon(volumes, DaemonOptionsFromFlags());
    case RunMode::kStatus:
      return RunStatus(volumes, SessionOptionsFromFlags().db_dir);
    case RunMode::kExplain:
      return RunExplain(volumes, SessionOptionsFromFlags().db_dir,
                        absl::GetFlag(FLAGS_verbose));
    case RunMode::kOneShot:
      break;
  }
  return RunOneShot(volumes, OneShotOptionsFromFlags());
}

}  // namespace
}  // namespace btrdupd

int main(int argc, char** argv) { return btrdupd::Main(argc, argv); }
