#include "daemon/volume_session.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/maintenance.h"
#include "daemon/duperemove_backend.h"
#include "daemon/file_opener.h"
#include "daemon/native_backend.h"
#include "daemon/real_file_access.h"
#include "daemon/real_volume_fs.h"

namespace btrdupd {
namespace {

// Metadata keys of VolumeSession::Totals (decimal).
constexpr char kMetaDedupedFilesTotal[] = "totals.deduped_files";
constexpr char kMetaDedupedBytesTotal[] = "totals.deduped_bytes";

// Page cache a session may keep holding for files it just hashed, so that the kernel's
// byte comparison during the dedupe that follows reads from memory instead of disk
// (see daemon/real_file_access.h). Dropped when the session closes.
constexpr uint64_t kKeepHashedBytes = uint64_t{256} << 20;

// How long consecutive steps of a one-shot run share one index transaction
// (EngineOptions::commit_interval).
constexpr absl::Duration kOneShotCommitInterval = absl::Milliseconds(500);

// Read-ahead with --jobs=N (threads that read while the engine hashes): the window per
// thread, and how much of one file is read ahead. Measured on 30 000 files of 8-24 KiB
// (bench/many_files_bench data, cold cache): --jobs=2 with 1 MiB per thread hashed in
// 20 s instead of 30 s and read no more than one thread (462 MiB); 2 MiB per thread read
// 23% more (hints beyond RealFileAccess's 256 files were dropped before their turn and
// read again), 8 MiB per thread 57% more and no faster.
constexpr uint64_t kReadAheadBytesPerThread = uint64_t{1} << 20;
constexpr uint64_t kReadAheadFileBytes = uint64_t{1} << 20;

}  // namespace

absl::Status ValidateBackendName(absl::string_view backend) {
  if (backend == "native" || backend == "duperemove") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown backend '", backend, "' (choose native or duperemove)"));
}

struct VolumeSession::Parts {
  std::unique_ptr<RealVolumeFs> volume_fs;
  std::unique_ptr<RealFileAccess> file_access;
  std::unique_ptr<DedupeEngine> engine;
};

VolumeSession::VolumeSession(OpenedVolume opened, SessionOptions options, Clock* clock)
    : location_(std::move(opened.location)),
      options_(std::move(options)),
      clock_(clock),
      lock_(std::move(opened.lock)),
      db_dir_(std::move(opened.db_dir)),
      index_(std::move(opened.index)) {}

VolumeSession::~VolumeSession() {
  // The engine restores flags on every path of a batch; this only catches what a
  // failure of the index itself may have left behind.
  if (parts_ != nullptr && parts_->engine != nullptr && !options_.dry_run) {
    (void)parts_->engine->RestorePendingReadOnlyFlips();
  }
}

absl::StatusOr<std::unique_ptr<VolumeSession>> VolumeSession::Open(
    absl::string_view volume, const SessionOptions& options, Clock* clock) {
  absl::Status backend_name = ValidateBackendName(options.backend);
  if (!backend_name.ok()) return backend_name;
  VolumeOpenOptions open_options;
  open_options.db_dir = options.db_dir;
  open_options.require_root = options.require_root;
  open_options.verify_index = options.verify_index;
  absl::StatusOr<OpenedVolume> opened = OpenVolumeForWork(volume, open_options, clock->Now());
  if (!opened.ok()) return opened.status();
  std::unique_ptr<VolumeSession> session(
      new VolumeSession(*std::move(opened), options, clock));
  absl::Status built = session->Build();
  if (!built.ok()) return built;
  return session;
}

absl::Status VolumeSession::Build() {
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(location_.path);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(config.status().message(),
                                     " — fix or remove the file; this volume is skipped"));
  }
  config_ = *config;

  absl::StatusOr<std::unique_ptr<FileOpener>> opener = FileOpener::Open(location_.path);
  if (!opener.ok()) return opener.status();
  opener_ = *std::move(opener);
  if (options_.backend == "duperemove") {
    DuperemoveBackend::Options backend_options;
    backend_options.max_arg_length = config_.max_arg_length;
    backend_options.should_stop = options_.should_stop;
    backend_ = std::make_unique<DuperemoveBackend>(opener_.get(), backend_options);
  } else {
    backend_ = std::make_unique<NativeBackend>(opener_.get());
  }
  absl::Status available = backend_->CheckAvailable();
  if (!available.ok()) return available;

  parts_ = std::make_unique<Parts>();
  absl::StatusOr<std::unique_ptr<RealVolumeFs>> volume_fs = RealVolumeFs::Open(location_.path);
  if (!volume_fs.ok()) return volume_fs.status();
  parts_->volume_fs = *std::move(volume_fs);
  // Each scan (one-shot and daemon alike) starts with a commit: the generations it
  // records are then exact, and it sees every change made before it. Without one, what
  // btrfs still holds as delayed items (a directory's new entries and inode update: a
  // directory renamed at the volume root with a symlink left in its place) stays out of
  // the tree the scan searches until the kernel's own commit.
  parts_->volume_fs->set_commit_before_listing(true);
  // --jobs=N: N threads read the files the engine hashes next, with a read-ahead window
  // as large as the threads can keep busy; the engine itself stays one thread.
  const int read_ahead_threads = options_.jobs > 1 ? options_.jobs : 0;
  EngineOptions engine_options;
  // The read-ahead threads hash what they read, with the engine's prefix length.
  parts_->file_access = std::make_unique<RealFileAccess>(
      opener_.get(), kKeepHashedBytes, read_ahead_threads, engine_options.prefix_bytes);
  if (read_ahead_threads > 0) {
    engine_options.prefetch_bytes = kReadAheadBytesPerThread * read_ahead_threads;
    engine_options.prefetch_file_bytes = kReadAheadFileBytes;
  }
  engine_options.dry_run = options_.dry_run;
  engine_options.hash_slice_bytes = options_.hash_slice_bytes;
  engine_options.hash_slice_time = options_.hash_slice_time;
  engine_options.should_stop = options_.should_stop;
  // The running totals are written in the deduping step's own transaction.
  engine_options.on_deduped = [this](const StepResult& step) { return AddToTotals(step); };
  parts_->engine = std::make_unique<DedupeEngine>(index_.get(), parts_->file_access.get(),
                                                  backend_.get(), config_, clock_,
                                                  location_.path, engine_options);
  // A run killed while a snapshot was writable left a record: restore it first.
  return parts_->engine->RestorePendingReadOnlyFlips();
}

absl::Status VolumeSession::ReloadConfig() {
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(location_.path);
  if (!config.ok()) return config.status();
  config_ = *config;
  parts_->engine->SetConfig(config_);
  return absl::OkStatus();
}

absl::StatusOr<ScanReport> VolumeSession::Scan(
    ScanMode mode, const std::function<void(const ScanProgress&)>& progress,
    const std::function<bool()>& should_stop) {
  if (options_.force_rescan && !scanned_once_) mode = ScanMode::kForceFull;
  ScanOptions scan_options;
  scan_options.progress = progress;
  scan_options.should_stop = should_stop;
  scan_options.catch_up_missed_full_scan = catch_up_missed_full_scan_;
  Scanner scanner(parts_->volume_fs.get(), index_.get(), config_, clock_, scan_options);
  absl::StatusOr<ScanReport> report = scanner.Run(mode);
  if (!report.ok()) return report;
  scanned_once_ = true;
  if (options_.ignore_stability_wait) {
    // --no-wait: every file the index knows now, new or seen waiting by an earlier run,
    // is stable. Files a dedupe finds changed later in this run still wait again.
    absl::Status ended = index_->EndStabilityWaits(clock_->Now());
    if (!ended.ok()) return ended;
  }
  return report;
}

absl::StatusOr<StepResult> VolumeSession::Step() {
  // Subvolume roots (and files) stay open within the step, never between steps.
  FileOpener::RootKeeper keep = opener_->KeepRoots();
  return parts_->engine->Step();
}

absl::Status VolumeSession::AddToTotals(const StepResult& step) {
  absl::StatusOr<Totals> totals = LoadTotals();
  if (!totals.ok()) return totals.status();
  absl::Status saved = index_->SetMeta(
      kMetaDedupedFilesTotal, absl::StrCat(totals->deduped_files + step.files_deduped));
  if (!saved.ok()) return saved;
  return index_->SetMeta(kMetaDedupedBytesTotal,
                         absl::StrCat(totals->deduped_bytes + step.bytes_shared));
}

absl::StatusOr<uint64_t> VolumeSession::BytesToHash() {
  const absl::Time now = clock_->Now();
  absl::StatusOr<std::vector<uint64_t>> sizes = index_->SizesWithWork(config_.min_file_size, now);
  if (!sizes.ok()) return sizes.status();
  uint64_t bytes = 0;
  for (uint64_t size : *sizes) {
    absl::StatusOr<std::vector<FileRecord>> files = index_->FilesOfSize(size);
    if (!files.ok()) return files.status();
    for (const FileRecord& f : *files) {
      if (f.hash_state != HashState::kFull && f.next_eligible <= now) bytes += f.size;
    }
  }
  return bytes;
}

absl::StatusOr<VolumeSession::Totals> VolumeSession::LoadTotals() {
  Totals totals;
  for (auto [key, field] : {std::pair<const char*, uint64_t*>{kMetaDedupedFilesTotal,
                                                              &totals.deduped_files},
                            {kMetaDedupedBytesTotal, &totals.deduped_bytes}}) {
    absl::StatusOr<std::optional<std::string>> text = index_->GetMeta(key);
    if (!text.ok()) return text.status();
    if (text->has_value() && !absl::SimpleAtoi(**text, field)) *field = 0;
  }
  return totals;
}

absl::Status VolumeSession::Settle(const std::function<bool()>& should_stop) {
  // The scan lists the subvolumes after a commit (see Open): the dedupes'
  // inode updates are then in the tree it reads, and the generation it records lies
  // past them.
  absl::StatusOr<ScanReport> report = Scan(ScanMode::kAuto, nullptr, should_stop);
  return report.status();
}

const EngineStats& VolumeSession::engine_stats() const { return parts_->engine->stats(); }

std::optional<HashProgress> VolumeSession::hash_progress() const {
  return parts_->engine->hash_progress();
}

absl::StatusOr<VolumeSummary> VolumeSession::RunOnce(
    const SessionObserver& observer, const std::function<bool()>& should_stop) {
  VolumeSummary summary;
  // Not running at full_scan_hour: a full scan scheduled since the last run is made up.
  catch_up_missed_full_scan_ = true;
  const absl::Time scan_start = absl::Now();
  absl::StatusOr<ScanReport> scan = Scan(ScanMode::kAuto, observer.on_scan, should_stop);
  summary.scan_time = absl::Now() - scan_start;
  if (!scan.ok()) {
    if (absl::IsCancelled(scan.status())) {
      summary.stopped = true;
      return summary;
    }
    return scan.status();
  }
  summary.scan = *scan;
  if (observer.on_scanned) {
    absl::StatusOr<uint64_t> to_hash = BytesToHash();
    if (!to_hash.ok()) return to_hash.status();
    observer.on_scanned(*to_hash);
  }

  // Maintenance that came due since the last run (a one-shot volume has no daemon to
  // do it): a dedupe-state reset first, so this run re-verifies with FIEMAP.
  MaintenanceTimes maintenance;
  if (!options_.dry_run) {
    absl::StatusOr<MaintenanceTimes> times = LoadMaintenanceTimes(*index_, clock_->Now());
    if (!times.ok()) return times.status();
    maintenance = *times;
    if (clock_->Now() >= NextDedupeReset(maintenance, MaintenancePolicyOf(config_))) {
      absl::Status reset =
          RunMaintenance(*index_, MaintenanceTask::kDedupeReset, clock_->Now());
      if (!reset.ok()) return reset;
      summary.maintenance.push_back("dedupe states reset (all verified again)");
    }
  }

  // A one-shot run lets consecutive steps share a transaction (ended below); the daemon
  // (Step() alone) commits every step, so its database never waits on an open one.
  parts_->engine->SetCommitInterval(kOneShotCommitInterval);
  while (true) {
    if (should_stop && should_stop()) {
      summary.stopped = true;
      break;
    }
    const absl::Time step_start = absl::Now();
    absl::StatusOr<StepResult> step = Step();
    if (!step.ok()) return step.status();
    const absl::Duration step_time = absl::Now() - step_start;
    switch (step->kind) {
      case StepResult::Kind::kHashed:
      case StepResult::Kind::kHashCopied:
      case StepResult::Kind::kFileSkipped:
        summary.hash_time += step_time;
        break;
      case StepResult::Kind::kDedupeBatch:
      case StepResult::Kind::kPlannedGroup:
        summary.dedupe_time += step_time;
        break;
      default:
        summary.other_time += step_time;
        break;
    }
    if (observer.on_step) observer.on_step(*step);
    summary += *step;
    if (step->kind == StepResult::Kind::kIdle) {
      if (step->next_eligible != absl::InfiniteFuture()) {
        summary.next_eligible = step->next_eligible;
      }
      break;
    }
  }
  // The steps' writes share transactions (EngineOptions::commit_interval): end the last.
  absl::Status committed = parts_->engine->CommitPending();
  if (!committed.ok()) return committed;
  if (!options_.dry_run && !summary.stopped && summary.files_deduped > 0) {
    const absl::Time settle_start = absl::Now();
    absl::Status settled = Settle(should_stop);
    summary.settle_time = absl::Now() - settle_start;
    if (absl::IsCancelled(settled)) {
      summary.stopped = true;
    } else if (!settled.ok()) {
      return settled;
    }
  }
  // A due vacuum, or one after a first pass (VacuumAfterPass: the database is loose),
  // or when a quarter of the file is free pages (VacuumForFreePages).
  if (!options_.dry_run && !summary.stopped) {
    const char* why = nullptr;
    if (VacuumAfterPass(summary.scan.kind == ScanKind::kFull, summary.scan.files_seen,
                        summary.scan.files_added)) {
      why = "database compacted after a first pass";
    } else if (clock_->Now() >= NextVacuum(maintenance, MaintenancePolicyOf(config_))) {
      why = "database vacuumed";
    } else {
      absl::StatusOr<VolumeIndex::FileSpace> space = index_->Space();
      if (!space.ok()) return space.status();
      if (VacuumForFreePages(*space)) why = "database compacted (a quarter of it was free)";
    }
    if (why != nullptr) {
      // Compaction is best effort: the pass's work is committed, and a VACUUM needs about
      // the database's size again (a nearly full disk is where btrdupd is run). A failed
      // one is rolled back and tried again at the next run; it does not fail this one.
      absl::Status vacuumed = RunMaintenance(*index_, MaintenanceTask::kVacuum, clock_->Now());
      summary.maintenance.push_back(
          vacuumed.ok() ? std::string(why)
                        : absl::StrCat("database not compacted (tried again next run): ",
                                       vacuumed.message()));
    }
  }
  return summary;
}

}  // namespace btrdupd
