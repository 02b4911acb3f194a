#include "core/dedupe_engine.h"

#include <algorithm>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/planner.h"
#include "core/dedupe_engine_internal.h"

namespace btrdupd {


namespace {

// Prefix digests of full-hash groups kept in memory (64 bytes each with the key).
constexpr size_t kMaxCachedPrefixes = 20000;

std::string TrimTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace

DedupeEngine::DedupeEngine(VolumeIndex* index, FileAccess* files, DedupeBackend* backend,
                           const VolumeConfig& config, Clock* clock, std::string volume_root,
                           EngineOptions options)
    : index_(index),
      files_(files),
      backend_(backend),
      config_(config),
      clock_(clock),
      volume_root_(TrimTrailingSlashes(std::move(volume_root))),
      options_(options),
      hasher_(files,
              FileHasherOptions{options.prefix_bytes, options.read_buffer_bytes,
                                options.should_stop, options.hash_slice_bytes,
                                options.hash_slice_time > absl::ZeroDuration()
                                    ? std::function<bool()>([this] {
                                        return clock_->Now() >= slice_deadline_;
                                      })
                                    : std::function<bool()>()}),
      read_ahead_(options.prefetch_bytes, options.prefetch_file_bytes, options.prefix_bytes) {}

std::string DedupeEngine::AbsPath(const std::string& relative) const {
  if (relative.empty()) return volume_root_;
  if (volume_root_ == "/") return absl::StrCat("/", relative);
  return absl::StrCat(volume_root_, "/", relative);
}

FileRef DedupeEngine::RefOf(const FileRecord& file) const {
  FileRef ref;
  ref.subvol_id = file.subvol_id;
  ref.path = file.path;
  ref.ino = file.ino;
  ref.display = AbsPath(file.path);
  if (auto it = subvol_paths_.find(file.subvol_id); it != subvol_paths_.end()) {
    ref.subvol_path = it->second;
  }
  // An unknown subvolume leaves subvol_path "": the open finds another subvolume there
  // and answers Aborted, which sends the file back to the scanner.
  return ref;
}

SubvolumeRef DedupeEngine::SubvolRefOf(uint64_t subvol_id,
                                       const std::string& relative_path) const {
  SubvolumeRef ref;
  ref.id = subvol_id;
  ref.path = relative_path;
  ref.display = AbsPath(relative_path);
  return ref;
}

absl::Status DedupeEngine::RestorePendingReadOnlyFlips() {
  ASSIGN_OR_RETURN(std::vector<ReadOnlyFlip> flips, index_->PendingReadOnlyFlips());
  absl::Status first_error;
  for (const ReadOnlyFlip& flip : flips) {
    absl::Status status =
        files_->SetSubvolumeReadOnly(SubvolRefOf(flip.subvol_id, flip.path), true);
    if (status.ok() || absl::IsNotFound(status)) {
      RETURN_IF_ERROR(index_->ClearReadOnlyFlip(flip.subvol_id));
    } else if (first_error.ok()) {
      first_error = absl::Status(
          status.code(), absl::StrCat("restoring the read-only flag of subvolume ",
                                      flip.subvol_id, ": ", status.message()));
    }
  }
  return first_error;
}

absl::StatusOr<StepResult> DedupeEngine::RunUntilIdle(
    const std::function<void(const StepResult&)>& progress,
    const std::function<bool()>& should_stop) {
  while (true) {
    if (should_stop && should_stop()) {
      RETURN_IF_ERROR(CommitPending());
      StepResult stopped;
      stopped.kind = StepResult::Kind::kInterrupted;
      stopped.detail = "stopped";
      return stopped;
    }
    ASSIGN_OR_RETURN(StepResult result, Step());
    if (progress) progress(result);
    if (result.kind == StepResult::Kind::kIdle) return result;
  }
}

absl::StatusOr<StepResult> DedupeEngine::Step() {
  const absl::Time now = clock_->Now();
  if (!in_pass_) {
    // Waits stored before the wall clock was stepped back end no later than their own
    // length from now (VolumeIndex::ClampStabilityWaits).
    RETURN_IF_ERROR(index_->ClampStabilityWaits(now, ToStabilityPolicy(config_)).status());
    ASSIGN_OR_RETURN(std::vector<uint64_t> sizes,
                     index_->SizesWithWork(config_.min_file_size, now));
    sizes_.assign(sizes.begin(), sizes.end());
    ASSIGN_OR_RETURN(std::vector<SubvolumeRecord> subvolumes, index_->ListSubvolumes());
    SetSubvolumes(std::move(subvolumes));
    attempted_.clear();
    attrs_cache_.clear();
    shared_cache_.clear();
    preparing_.reset();
    cursor_.reset();
    read_ahead_.Reset();
    group_.Unload();  // each pass reads its groups afresh
    if (prefix_of_full_.size() > kMaxCachedPrefixes) prefix_of_full_.clear();
    in_pass_ = true;
  }
  slice_deadline_ = options_.hash_slice_time > absl::ZeroDuration()
                        ? now + options_.hash_slice_time
                        : absl::InfiniteFuture();
  if (hashing_ != nullptr) {
    // A hash part-way is this step's unit.
    if (!batch_open_) {
      RETURN_IF_ERROR(index_->BeginBatch());
      batch_open_ = true;
      batch_began_ = absl::Now();
    }
    absl::StatusOr<StepResult> result = ResumeHash(now);
    if (!result.ok()) {
      batch_open_ = false;
      index_->RollbackBatch().IgnoreError();
      return result.status();
    }
    if (absl::Now() - batch_began_ >= options_.commit_interval) RETURN_IF_ERROR(CommitPending());
    Account(*result);
    return result;
  }
  int examined = 0;
  EngineCounts passed_over;  // of the sizes with nothing to do (bytes read to learn that)
  while (!sizes_.empty()) {
    const uint64_t size = sizes_.front();
    bool size_done = false;
    if (!batch_open_) {
      RETURN_IF_ERROR(index_->BeginBatch());
      batch_open_ = true;
      batch_began_ = absl::Now();
    }
    absl::StatusOr<StepResult> result = StepSize(size, now, &size_done);
    if (result.ok() && result->files_deduped > 0 && !options_.dry_run && options_.on_deduped) {
      absl::Status noted = options_.on_deduped(*result);
      if (!noted.ok()) result = noted;
    }
    if (!result.ok()) {
      batch_open_ = false;
      index_->RollbackBatch().IgnoreError();
      group_.Unload();  // it may hold rows the rollback undid
      return result.status();
    }
    if (absl::Now() - batch_began_ >= options_.commit_interval) RETURN_IF_ERROR(CommitPending());
    if (size_done) {
      // A size is visited once per pass, and these only ever concern its members.
      sizes_.pop_front();
      attrs_cache_.clear();
      shared_cache_.clear();
      preparing_.reset();
      attempted_.clear();
      cursor_.reset();
      read_ahead_.SizeDone();
      read_ahead_.ForgetUpTo(size);
    }
    // Only a size with nothing to do at all is passed over silently (up to a limit).
    const bool nothing = result->kind == StepResult::Kind::kNothingToDo;
    if (!nothing || ++examined >= std::max(options_.max_sizes_per_step, 1)) {
      if (nothing) {
        *result += passed_over;
      } else {
        result->bytes_read += passed_over.bytes_read;
      }
      Account(*result);
      return result;
    }
    passed_over += *result;
  }
  in_pass_ = false;
  RETURN_IF_ERROR(CommitPending());
  StepResult idle;
  idle.kind = StepResult::Kind::kIdle;
  idle += passed_over;
  ASSIGN_OR_RETURN(std::optional<absl::Time> next, index_->NextEligibleAfter(now));
  idle.next_eligible = next.has_value() ? *next : absl::InfiniteFuture();
  Account(idle);
  return idle;
}

absl::Status DedupeEngine::CommitPending() {
  if (!batch_open_) return absl::OkStatus();
  batch_open_ = false;
  absl::Status committed = index_->CommitBatch();
  if (!committed.ok()) {
    index_->RollbackBatch().IgnoreError();
    group_.Unload();  // it may hold rows the rollback undid
  }
  return committed;
}

absl::Status DedupeEngine::ReloadGroup(uint64_t size) {
  ASSIGN_OR_RETURN(std::vector<FileRecord> rows, index_->FilesOfSize(size));
  group_.Reset(size, std::move(rows));
  full_prefixes_.clear();
  unknown_full_prefix_ = false;
  return absl::OkStatus();
}

absl::Status DedupeEngine::RefreshGroup(uint64_t size) {
  const FileChanges changes = index_->TakeFileChanges();
  if (!group_.loaded() || group_.size() != size || changes.overflow) return ReloadGroup(size);
  for (int64_t id : changes.ids) {
    const std::optional<size_t> at = group_.Find(id);
    ASSIGN_OR_RETURN(std::optional<FileRecord> row, index_->GetFile(id));
    if (!at.has_value()) {
      if (row.has_value() && row->size == size) return ReloadGroup(size);  // joined
      continue;
    }
    if (!row.has_value() || !group_.SameFile(*at, *row)) return ReloadGroup(size);  // left
    group_.Replace(*at, *row);
    if (member_index_generation_ == group_.generation()) member_index_.NoteHashed(*at);
  }
  return absl::OkStatus();
}

absl::StatusOr<StepResult> DedupeEngine::StepSize(uint64_t size, absl::Time now,
                                                  bool* size_done) {
  StepResult examined;
  examined.kind = StepResult::Kind::kNothingToDo;
  examined.size = size;
  RETURN_IF_ERROR(RefreshGroup(size));
  std::vector<FileRecord>& members = group_.members();
  if (group_.inodes() < 2) {
    *size_done = true;
    return examined;
  }
  uint64_t side_bytes = 0;
  if (group_.HasPrefixMembers()) {
    ASSIGN_OR_RETURN(side_bytes, LearnFullGroupPrefixes());
  }
  std::optional<HashTask> task =
      group_.NextHashTask(now, options_.prefix_bytes, attempted_, full_prefixes_);
  if (task.has_value()) {
    RETURN_IF_ERROR(PrefetchAhead(members, now));
    ASSIGN_OR_RETURN(StepResult result, HashSome(members, *task, now));
    result.bytes_read += side_bytes;
    return result;
  }
  examined.bytes_read = side_bytes;

  // Each full-hash group once per pass: a settled one is not looked at again.
  for (size_t g = group_.OpenGroupsBegin(now); g < group_.groups().size(); ++g) {
    ASSIGN_OR_RETURN(std::optional<StepResult> result, ProcessGroup(g, now));
    if (result.has_value()) {
      if (result->kind == StepResult::Kind::kDedupeBatch) result->batches = 1;
      result->bytes_read += side_bytes;
      return *result;
    }
    group_.SettleGroup(g);
  }
  *size_done = true;
  if (!options_.dry_run) {
    // Hashed members that matched nothing become kUnique, so the size stops coming back
    // from SizesWithWork until a new or changed file of this size appears.
    absl::flat_hash_set<int64_t> grouped;
    for (const std::vector<size_t>& indices : group_.groups()) {
      for (size_t i : indices) grouped.insert(members[i].id);
    }
    std::vector<int64_t> unique;
    for (const FileRecord& m : members) {
      if (m.dedupe_state == DedupeState::kPending && m.hash_state != HashState::kNone &&
          IsEligible(m, now) && !attempted_.contains(m.id) && !grouped.contains(m.id)) {
        unique.push_back(m.id);
      }
    }
    for (int64_t id : unique) {
      RETURN_IF_ERROR(index_->SetDedupeState(id, DedupeState::kUnique, 0));
    }
  }
  return examined;
}

absl::Status DedupeEngine::Skip(const FileRecord& file, SkipKind kind,
                                absl::string_view detail, StepResult& result) {
  attempted_.insert(file.id);
  ++result.files_skipped;
  result.skipped.Add(kind);
  if (result.detail.empty()) {
    result.detail = absl::StrCat(file.path, ": ", SkipKindName(kind), ": ", detail);
  }
  if (options_.dry_run) return absl::OkStatus();
  return index_->RecordSkip(file.id, kind, detail, clock_->Now());
}

absl::Status DedupeEngine::BackToScanner(const FileRecord& file, const absl::Status& why,
                                         StepResult& result) {
  attempted_.insert(file.id);
  ++result.files_changed;
  if (result.detail.empty()) {
    result.detail = absl::StrCat(AbsPath(file.path), ": not the file the scan recorded (",
                                 why.message(), "); back to the scanner");
  }
  if (options_.dry_run) return absl::OkStatus();
  return index_->InvalidateFile(file.id, clock_->Now(), ToStabilityPolicy(config_));
}

absl::Status DedupeEngine::RemoveVanished(const FileRecord& file, StepResult& result) {
  attempted_.insert(file.id);
  ++result.files_removed;
  return index_->RemoveFile(file.id);
}

void DedupeEngine::Account(const StepResult& result) {
  ++stats_.steps;
  if (result.kind == StepResult::Kind::kIdle) ++stats_.passes;
  stats_ += result;
}

}  // namespace btrdupd
