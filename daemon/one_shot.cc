#include "daemon/one_shot.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/clock.h"
#include "core/skip_kind.h"
#include "daemon/exit_codes.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/no_space.h"
#include "daemon/progress.h"
#include "daemon/run_report.h"
#include "daemon/scaled_clock.h"
#include "daemon/session_flags.h"
#include "daemon/utf8.h"
#include "daemon/volume_open.h"

ABSL_FLAG(bool, dry_run, false,
          "Only show what would be done: print each group of identical files that\n"
          "would be deduped and the bytes it would save. No file is changed and no\n"
          "dedupe state is recorded (hashes are kept in the database for next time).");
ABSL_FLAG(bool, no_wait, false,
          "Treat every file as stable now instead of waiting initial_wait_minutes\n"
          "after its last change (longer for files that keep changing). Use it from\n"
          "cron or a backup hook once the backup has finished writing.");

namespace btrdupd {

// A --jobs value: a thread count from 0 (one per CPU) to kMaxJobs. Only one-shot runs
// take it (daemon/mode_options.cc): the daemon keeps one processing thread.
struct JobsFlag {
  static constexpr int kMaxJobs = 64;
  int count = 1;
};

bool AbslParseFlag(absl::string_view text, JobsFlag* flag, std::string* error) {
  int n = 0;
  if (!absl::SimpleAtoi(text, &n) || n < 0 || n > JobsFlag::kMaxJobs) {
    *error = absl::StrCat("'", text, "' is not a thread count: give a number from 1 to ",
                          JobsFlag::kMaxJobs, ", or 0 for one per CPU");
    return false;
  }
  flag->count = n;
  return true;
}

std::string AbslUnparseFlag(const JobsFlag& flag) { return absl::StrCat(flag.count); }

}  // namespace btrdupd

ABSL_FLAG(btrdupd::JobsFlag, jobs, btrdupd::JobsFlag(),
          "N: One-shot mode only: N threads read the files to be hashed ahead of the\n"
          "processing thread and hash what they read, up to 1 MiB of each file (0: one\n"
          "per CPU), for first runs and backup windows where the space\n"
          "is wanted back quickly. The database and the dedupe calls stay on one\n"
          "thread; nice 19 and the idle I/O class still apply. The daemon always keeps\n"
          "one processing thread.");
ABSL_DECLARE_FLAG(bool, json);
ABSL_FLAG(bool, quiet, false,
          "Print nothing but errors: no summary lines, no progress, no warnings\n"
          "(one-shot runs; the exit code says how it went; --json still prints).");

namespace btrdupd {
namespace {

std::atomic<bool> stop_requested{false};

void OnStopSignal(int) { stop_requested.store(true); }

void InstallStopHandlers() {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

std::string Plural(uint64_t n, absl::string_view one, absl::string_view many) {
  return absl::StrCat(n, " ", n == 1 ? one : many);
}

std::string HumanDuration(absl::Duration d) {
  if (d < absl::Minutes(1)) return "under a minute";
  if (d < absl::Hours(2)) return absl::StrCat(absl::ToInt64Minutes(d), " min");
  return absl::StrCat(absl::ToInt64Hours(d), " h");
}

void PrintPlannedGroup(const PlannedGroup& group) {
  std::string text = absl::StrFormat(
      "would dedupe %s of %s (sha256 %s), sharing %s; reference %s\n",
      Plural(group.destination_paths.size(), "copy", "copies"), HumanBytes(group.size),
      group.hash_hex.substr(0, 16), HumanBytes(group.bytes_saveable),
      PrintablePath(group.reference_path));
  for (const std::string& path : group.destination_paths) {
    absl::StrAppend(&text, "    ", PrintablePath(path), "\n");
  }
  if (group.already_shared > 0 || group.not_dedupable > 0) {
    absl::StrAppend(&text, "    (", group.already_shared, " already shared, ",
                    group.not_dedupable, " cannot be deduped)\n");
  }
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
}

// How the run reports: summary lines, or one JSON object; metrics file or not.
struct Output {
  bool json = false;
  bool quiet = false;
  std::string metrics_file;
};

// Runs one volume and says how it went.
VolumeOutcome RunVolume(const std::string& volume, const SessionOptions& options,
                        Clock* clock, const Output& output) {
  VolumeOutcome outcome;
  outcome.volume = volume;
  const absl::Time start = absl::Now();
  auto failed = [&](absl::string_view where, const absl::Status& status) {
    std::string message(status.message());
    if (absl::IsResourceExhausted(status)) {
      // Which filesystem is full, and what to do (a full volume or database location).
      absl::StatusOr<VolumeLocation> location = ResolveVolume(volume, options.db_dir);
      absl::StrAppend(&message, "; ",
                      location.ok() ? NoSpaceAdvice(location->path, location->db_path)
                                    : NoSpaceAdvice(where, ""));
    }
    LogError(where, "%s", message);
    outcome.error = message;
    outcome.duration = absl::Now() - start;
    return outcome;
  };
  absl::StatusOr<std::unique_ptr<VolumeSession>> session =
      VolumeSession::Open(volume, options, clock);
  if (!session.ok()) return failed(volume, session.status());
  const std::string& path = (*session)->path();
  outcome.volume = path;
  LogDebug(path, "database %s, backend %s%s", (*session)->location().db_path,
           options.backend, options.dry_run ? ", dry run" : "");

  Progress scan_progress(path, "scanning");
  Progress work_progress(path, options.dry_run ? "planning" : "deduping");
  SessionObserver observer;
  observer.on_scan = [&](const ScanProgress& p) {
    scan_progress.UpdateText(absl::StrCat(ScanKindName(p.kind), " scan, ", p.files_seen,
                                          " files in ", p.dirs_listed, " directories"));
  };
  uint64_t hashed = 0, read = 0, deduped = 0, groups = 0, to_hash = 0;
  absl::Time hashing_since = absl::InfinitePast();
  observer.on_scanned = [&](uint64_t bytes) {
    to_hash = bytes;
    hashing_since = absl::Now();
  };
  observer.on_step = [&](const StepResult& step) {
    scan_progress.Finish();
    if (step.kind == StepResult::Kind::kPlannedGroup && step.planned.has_value() &&
        !output.json && !output.quiet) {
      work_progress.Finish();
      PrintPlannedGroup(*step.planned);
    }
    switch (step.kind) {
      case StepResult::Kind::kHashed:
      case StepResult::Kind::kHashCopied:
        LogDebug(path, "hashed %d file(s) of %d bytes, last %s (%d bytes read)",
                 step.files_hashed, step.size, PrintablePath(step.path), step.bytes_read);
        break;
      case StepResult::Kind::kFileSkipped:
        LogDebug(path, "skipped %s: %s", PrintablePath(step.path), step.detail);
        break;
      case StepResult::Kind::kDedupeBatch:
        LogDebug(path,
                 "group of %d-byte files, reference %s: %d deduped, %d already shared, "
                 "%d changed, %d skipped",
                 step.size, PrintablePath(step.path), step.files_deduped,
                 step.files_already_shared, step.files_changed, step.files_skipped);
        break;
      default:
        break;
    }
    read += step.bytes_read;
    hashed += step.files_hashed;
    deduped += step.files_deduped;
    if (step.kind == StepResult::Kind::kPlannedGroup) ++groups;
    std::string read_text = HumanBytes(read);
    if (to_hash > 0) absl::StrAppend(&read_text, " of at most ", HumanBytes(to_hash));
    std::string text = absl::StrCat(
        "hashed ", hashed, " files (", read_text, " read), ",
        options.dry_run ? absl::StrCat(groups, " groups to dedupe")
                        : absl::StrCat(deduped, " files deduped"));
    const absl::Duration elapsed = absl::Now() - hashing_since;
    if (to_hash > read && read > 0 && elapsed >= absl::Seconds(2)) {
      // Bytes left at the rate so far; prefix-only reads make it an upper bound.
      const double rate = static_cast<double>(read) / absl::ToDoubleSeconds(elapsed);
      absl::StrAppend(&text, ", ETA ",
                      HumanDuration(absl::Seconds(static_cast<double>(to_hash - read) / rate)));
    }
    work_progress.UpdateText(text);
  };
  absl::StatusOr<VolumeSummary> summary =
      (*session)->RunOnce(observer, [] { return stop_requested.load(); });
  scan_progress.Finish();
  work_progress.Finish();
  if (!summary.ok()) return failed(path, summary.status());
  outcome.summary = *summary;
  if (output.json || !output.metrics_file.empty()) {
    absl::StatusOr<VolumeMetrics> metrics = MetricsOfSession(**session, clock->Now());
    if (!metrics.ok()) return failed(path, metrics.status());
    if (summary->scan.errors > 0) metrics->errors["scan"] = summary->scan.errors;
    outcome.metrics = *std::move(metrics);
  }
  LogDebug(path,
           "wall time: scan %.2f s, hashing %.2f s, dedupe %.2f s, other steps %.2f s, "
           "settling %.2f s",
           absl::ToDoubleSeconds(summary->scan_time), absl::ToDoubleSeconds(summary->hash_time),
           absl::ToDoubleSeconds(summary->dedupe_time),
           absl::ToDoubleSeconds(summary->other_time),
           absl::ToDoubleSeconds(summary->settle_time));
  if (!output.json && !output.quiet) {
    std::string line = FormatSummary(path, *summary, options.dry_run, clock->Now());
    std::fputs(absl::StrCat(line, "\n").c_str(), stdout);
    std::fflush(stdout);
  }
  outcome.duration = absl::Now() - start;
  if (summary->stopped) {
    LogWarning(path, "interrupted; the work done so far is saved");
    outcome.error = "interrupted";
    return outcome;
  }
  outcome.ok = true;
  return outcome;
}

// The metrics of every volume of the run (a volume that failed: up 0, its error).
void WriteRunMetrics(const std::string& file, const std::vector<VolumeOutcome>& outcomes,
                     absl::Time now) {
  std::vector<VolumeMetrics> all;
  for (const VolumeOutcome& o : outcomes) {
    VolumeMetrics m;
    if (o.metrics.has_value()) m = *o.metrics;
    m.volume = o.volume;
    m.up = o.ok;
    m.taken = now;
    if (!o.ok) ++m.errors[o.summary.has_value() ? "run" : "open"];
    all.push_back(std::move(m));
  }
  absl::Status written = WriteMetricsFile(file, FormatMetrics(all));
  if (!written.ok()) LogError("", "%s", written.message());
}

}  // namespace

std::string PrintablePath(absl::string_view path) {
  return MapUtf8(
      path,
      [](std::string& out, unsigned char c) {
        if (c < 0x20 || c == 0x7f || c == '\\') {
          AppendHexEscape(out, c);
        } else {
          out.push_back(static_cast<char>(c));
        }
      },
      AppendHexEscape, /*c1_is_bad=*/true);
}

std::string FormatSummary(absl::string_view volume, const VolumeSummary& summary,
                          bool dry_run, absl::Time now) {
  std::vector<std::string> parts;
  parts.push_back(absl::StrCat(ScanKindName(summary.scan.kind), " scan saw ",
                               Plural(summary.scan.files_seen, "file", "files"), " (",
                               summary.scan.files_added, " new, ",
                               summary.scan.files_changed, " changed, ",
                               summary.scan.files_removed, " gone)"));
  std::string hashed = absl::StrCat("hashed ", Plural(summary.files_hashed, "file", "files"),
                                    " (", HumanBytes(summary.bytes_read), " read");
  if (summary.prefixes_hashed > 0) {
    absl::StrAppend(&hashed, ", ", summary.prefixes_hashed, " prefix ",
                    summary.prefixes_hashed == 1 ? "check" : "checks");
  }
  if (summary.hashes_copied > 0) {
    absl::StrAppend(&hashed, ", ", summary.hashes_copied,
                    summary.hashes_copied == 1 ? " hash" : " hashes",
                    " copied from shared extents");
  }
  parts.push_back(absl::StrCat(hashed, ")"));
  if (dry_run) {
    parts.push_back(absl::StrCat("would dedupe ",
                                 Plural(summary.files_planned, "file", "files"), " in ",
                                 Plural(summary.groups_planned, "group", "groups"), ", sharing ",
                                 HumanBytes(summary.bytes_saveable), " (",
                                 summary.bytes_saveable, " bytes)"));
  } else {
    parts.push_back(absl::StrCat("deduped ", Plural(summary.files_deduped, "file", "files"),
                                 ": shared ", HumanBytes(summary.bytes_shared), " (",
                                 summary.bytes_shared, " bytes), freed ",
                                 HumanBytes(summary.bytes_freed), " (", summary.bytes_freed,
                                 " bytes)"));
  }
  if (summary.files_already_shared > 0) {
    parts.push_back(absl::StrCat(summary.files_already_shared, " already shared"));
  }
  std::vector<std::string> reasons;
  for (SkipKind kind : kAllSkipKinds) {
    if (summary.skipped.of(kind) > 0) {
      reasons.push_back(absl::StrCat(SkipKindName(kind), ": ", summary.skipped.of(kind)));
    }
  }
  parts.push_back(absl::StrCat("skipped ", summary.skipped.total(),
                               reasons.empty() ? "" : absl::StrCat(" (", absl::StrJoin(reasons, ", "), ")")));
  if (summary.files_changed > 0) {
    parts.push_back(absl::StrCat(Plural(summary.files_changed, "file", "files"),
                                 " changed while being hashed or deduped (retried later)"));
  }
  if (summary.next_eligible.has_value()) {
    parts.push_back(absl::StrCat(
        "some files are still in their stability wait, the next eligible in ",
        HumanDuration(*summary.next_eligible - now),
        " (run again later, or use --no-wait)"));
  }
  if (!summary.maintenance.empty()) {
    parts.push_back(absl::StrCat("maintenance: ", absl::StrJoin(summary.maintenance, ", ")));
  }
  if (summary.stopped) parts.push_back("interrupted");
  return absl::StrCat(volume, ": ", absl::StrJoin(parts, "; "));
}

SessionOptions OneShotOptionsFromFlags() {
  SessionOptions options = SessionOptionsFromFlags();
  options.dry_run = absl::GetFlag(FLAGS_dry_run);
  options.ignore_stability_wait = absl::GetFlag(FLAGS_no_wait);
  options.should_stop = [] { return stop_requested.load(); };
  const int jobs = absl::GetFlag(FLAGS_jobs).count;
  options.jobs = jobs > 0 ? jobs : std::max(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  return options;
}

int RunOneShot(const std::vector<std::string>& volumes, const SessionOptions& options) {
  InstallStopHandlers();
  ScaledClock clock(1.0, options.test_clock_offset);
  Output output;
  output.json = absl::GetFlag(FLAGS_json);
  output.quiet = absl::GetFlag(FLAGS_quiet);
  output.metrics_file = MetricsFileFromFlags();
  int failed = 0;
  std::vector<VolumeOutcome> outcomes;
  for (const std::string& volume : volumes) {
    if (stop_requested.load()) {
      LogWarning(volume, "not processed: interrupted");
      ++failed;
      VolumeOutcome skipped;
      skipped.volume = volume;
      skipped.error = "not processed: interrupted";
      outcomes.push_back(std::move(skipped));
      continue;
    }
    outcomes.push_back(RunVolume(volume, options, &clock, output));
    if (!outcomes.back().ok) ++failed;
  }
  const int exit_code = ExitCodeFor(static_cast<int>(volumes.size()), failed);
  if (!output.metrics_file.empty()) WriteRunMetrics(output.metrics_file, outcomes, clock.Now());
  if (output.json) {
    std::fputs(absl::StrCat(OneShotJson(outcomes, options.dry_run, exit_code), "\n").c_str(),
               stdout);
    std::fflush(stdout);
  }
  return exit_code;
}

}  // namespace btrdupd
