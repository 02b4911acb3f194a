// DedupeEngine, stage 1: hashing the members of a size group (see dedupe_engine.h).
// The reading is core/file_hasher.h's, the hash copying core/hash_copy.h's, the choice
// of files to read ahead core/read_ahead.h's; this file records what they found.

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/config.h"
#include "core/dedupe_engine.h"
#include "core/dedupe_engine_internal.h"
#include "core/planner.h"

namespace btrdupd {

absl::Status DedupeEngine::FileTrouble(const FileRecord& file, const absl::Status& error,
                                       absl::string_view doing, StepResult& result) {
  result.kind = StepResult::Kind::kFileSkipped;
  if (IsTreeChanged(error)) return BackToScanner(file, error, result);
  if (absl::IsNotFound(error)) {
    result.detail = absl::StrCat(AbsPath(file.path), ": vanished");
    return RemoveVanished(file, result);
  }
  return Skip(file, SkipKindOfError(error, SkipKind::kUnreadable),
              absl::StrCat(doing, ": ", error.message()), result);
}

absl::Status DedupeEngine::Changed(const FileRecord& file, StepResult& result) {
  attempted_.insert(file.id);
  ++result.files_changed;
  result.kind = StepResult::Kind::kFileSkipped;
  result.detail = absl::StrCat(AbsPath(file.path), ": changed while being read; waits again");
  if (options_.dry_run) return absl::OkStatus();
  return index_->InvalidateFile(file.id, clock_->Now(), ToStabilityPolicy(config_));
}

absl::Status DedupeEngine::SetHashForInode(std::vector<FileRecord>& members,
                                           const FileRecord& file, HashState state,
                                           const std::string& hash) {
  const std::string value = hash;  // `hash` may live in `members`
  const uint64_t size = file.size;
  MemberIndex& index = IndexMembers(members);
  const std::vector<size_t> links = index.SameInode(file);
  for (size_t i : links) {
    FileRecord m = members[i];
    if (m.size != size) continue;
    RETURN_IF_ERROR(index_->SetHash(m.id, state, value));
    m.hash_state = state;  // keep the group current (the index's row comes next step)
    m.hash = value;
    group_.Replace(i, m);
    index.NoteHashed(i);
  }
  return absl::OkStatus();
}

void DedupeEngine::SetSubvolumes(std::vector<SubvolumeRecord> subvolumes) {
  subvolumes_ = std::move(subvolumes);
  subvol_paths_.clear();
  for (const SubvolumeRecord& s : subvolumes_) subvol_paths_[s.id] = s.path;
}

std::string DedupeEngine::PathInSubvolume(const FileRecord& file) const {
  auto it = subvol_paths_.find(file.subvol_id);
  if (it == subvol_paths_.end() || it->second.empty()) return file.path;
  const std::string& base = it->second;
  if (file.path.size() > base.size() && file.path.compare(0, base.size(), base) == 0 &&
      file.path[base.size()] == '/') {
    return file.path.substr(base.size() + 1);
  }
  return file.path;
}

MemberIndex& DedupeEngine::IndexMembers(const std::vector<FileRecord>& members) {
  if (member_index_generation_ != group_.generation() || !member_index_.Indexes(members)) {
    member_index_ =
        MemberIndex(members, [this](const FileRecord& m) { return PathInSubvolume(m); });
    member_index_generation_ = group_.generation();
  }
  return member_index_;
}

absl::StatusOr<bool> DedupeEngine::TryCopyHash(std::vector<FileRecord>& members,
                                               const FileRecord& file, bool prefix_task,
                                               StepResult& result) {
  const std::vector<size_t> candidates =
      IndexMembers(members).CopyCandidates(file, PathInSubvolume(file), prefix_task);
  std::optional<size_t> source =
      FindHashSource(*files_, members, candidates, RefOf(file),
                     [this](const FileRecord& m) { return RefOf(m); });
  if (!source.has_value()) return false;
  const FileRecord& other = members[*source];
  const std::string display = RefOf(other).display;
  const HashState state = other.hash_state;
  const std::string hash = other.hash;
  RETURN_IF_ERROR(SetHashForInode(members, file, state, hash));
  result.hashes_copied = 1;
  result.kind = StepResult::Kind::kHashCopied;
  result.detail = absl::StrCat("shares all extents with ", display);
  return true;
}

absl::StatusOr<PrefixReading> DedupeEngine::PrefixOfFullGroup(const std::string& full_hash) {
  PrefixReading found;
  auto it = prefix_of_full_.find(full_hash);
  if (it != prefix_of_full_.end()) {
    found.digest = it->second;
    return found;
  }
  const std::vector<size_t>* holders = group_.FullGroup(full_hash);
  if (holders == nullptr) return found;
  const std::vector<size_t> candidates = *holders;
  for (size_t i : candidates) {
    const FileRecord rep = group_.members()[i];
    if (rep.hash_state != HashState::kFull || rep.hash != full_hash) continue;
    ASSIGN_OR_RETURN(PrefixReading read, hasher_.PrefixOf(RefOf(rep), rep));
    found.bytes_read += read.bytes_read;
    if (!read.digest.has_value()) continue;
    prefix_of_full_[full_hash] = *read.digest;
    found.digest = std::move(read.digest);
    return found;
  }
  return found;  // unknown
}

absl::StatusOr<DedupeEngine::ReadOn> DedupeEngine::ReadsOn(
    const std::vector<FileRecord>& members, const FileRecord& file,
    const std::string& prefix_digest) {
  // A prefix that matches another member's prefix, or the prefix of a group that already
  // has full hashes (or a group whose prefix cannot be read), means reading on now, in
  // the same pass over the file. (A matching prefix-only member then finds this file's
  // full hash through the engine's prefix cache; see NeedsFullGroupPrefixes.)
  (void)members;
  ReadOn answer;
  answer.whole = group_.PrefixHasOtherInode(prefix_digest, file);
  if (answer.whole) return answer;
  ASSIGN_OR_RETURN(answer.side_bytes, LearnFullGroupPrefixes());
  answer.whole = full_prefixes_.contains(prefix_digest) || unknown_full_prefix_;
  return answer;
}

absl::StatusOr<StepResult> DedupeEngine::HashMember(std::vector<FileRecord>& members,
                                                    const HashTask& task, absl::Time now) {
  const FileRecord file = members[task.member];  // a copy: `members` is updated below
  read_ahead_.Consumed(file.id);
  StepResult result;
  result.kind = StepResult::Kind::kHashed;
  result.path = AbsPath(file.path);
  result.size = file.size;

  absl::StatusOr<FileAttributes> attrs = files_->GetAttributes(RefOf(file));
  if (!attrs.ok()) {
    RETURN_IF_ERROR(FileTrouble(file, attrs.status(), "cannot read attributes", result));
    return result;
  }
  // Kept for the group's extent check and dedupe while this size group is worked on.
  attrs_cache_[file.id] = *attrs;
  if (attrs->swapfile) {
    result.kind = StepResult::Kind::kFileSkipped;
    RETURN_IF_ERROR(Skip(file, SkipKind::kSwapfile, "active swap file: never read or deduped", result));
    return result;
  }

  ASSIGN_OR_RETURN(bool copied, TryCopyHash(members, file, task.prefix, result));
  if (copied) return result;

  uint64_t side_bytes = 0;  // read from other members to learn their groups' prefixes
  ASSIGN_OR_RETURN(
      HashReading reading,
      hasher_.Hash(RefOf(file), file, task.prefix,
                   [&](const std::string& prefix_digest) -> absl::StatusOr<bool> {
                     ASSIGN_OR_RETURN(ReadOn answer, ReadsOn(members, file, prefix_digest));
                     side_bytes += answer.side_bytes;
                     return answer.whole;
                   }));
  result.bytes_read = side_bytes;
  RETURN_IF_ERROR(RecordReading(members, file, std::move(reading), result));
  return result;
}

absl::Status DedupeEngine::RecordReading(std::vector<FileRecord>& members,
                                         const FileRecord& file, HashReading reading,
                                         StepResult& result) {
  result.bytes_read += reading.bytes_read;
  switch (reading.outcome) {
    case HashReading::Outcome::kOpenFailed:
      return FileTrouble(file, reading.error, "cannot read", result);
    case HashReading::Outcome::kChanged:
      return Changed(file, result);
    case HashReading::Outcome::kReadFailed:
      result.kind = StepResult::Kind::kFileSkipped;
      return Skip(file, SkipKindOfError(reading.error, SkipKind::kUnreadable),
                  absl::StrCat("read error: ", reading.error.message()), result);
    case HashReading::Outcome::kInterrupted:
      // Nothing recorded: the file is hashed next time.
      result.kind = StepResult::Kind::kInterrupted;
      result.detail = "interrupted";
      return absl::OkStatus();
    case HashReading::Outcome::kAllHoles:
      // Only holes: nothing on disk to share, so not a dedupe candidate at all.
      result.kind = StepResult::Kind::kFileSkipped;
      return Skip(file, SkipKind::kAllHoles, "no data on disk", result);
    case HashReading::Outcome::kPartial:
      // Goes on in the next step (ResumeHash).
      result.kind = StepResult::Kind::kHashSlice;
      result.detail = absl::StrCat(reading.partial->offset(), " of ", file.size, " bytes");
      hashing_ = std::move(reading.partial);
      return absl::OkStatus();
    case HashReading::Outcome::kFull:
      RETURN_IF_ERROR(SetHashForInode(members, file, HashState::kFull, reading.full_digest));
      if (file.size > 2 * options_.prefix_bytes && !reading.prefix_digest.empty()) {
        prefix_of_full_[reading.full_digest] = reading.prefix_digest;
      }
      result.kind = StepResult::Kind::kHashed;
      result.files_hashed = 1;
      return absl::OkStatus();
    case HashReading::Outcome::kPrefix:
      RETURN_IF_ERROR(
          SetHashForInode(members, file, HashState::kPrefix, reading.prefix_digest));
      // Not counted as a hashed file: only its first bytes were read (bytes_read says
      // so), and it is counted once its full hash is computed, if ever.
      result.prefixes_hashed = 1;
      result.detail = "prefix";
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::StatusOr<StepResult> DedupeEngine::ResumeHash(absl::Time now) {
  std::unique_ptr<HashInProgress> partial = std::move(hashing_);
  const FileRecord started = partial->file;
  StepResult result;
  result.kind = StepResult::Kind::kHashSlice;
  result.path = AbsPath(started.path);
  result.size = started.size;
  RETURN_IF_ERROR(RefreshGroup(started.size));
  std::vector<FileRecord>& members = group_.members();
  const std::optional<size_t> at = group_.Find(started.id);
  if (!at.has_value() || !IsEligible(members[*at], now)) {
    // Removed, or seen changed by the scanner and waiting again: nothing to record.
    result.kind = StepResult::Kind::kNothingToDo;
    result.detail = absl::StrCat(result.path, ": hash dropped part-way (the file changed)");
    return result;
  }
  const FileRecord file = members[*at];
  ASSIGN_OR_RETURN(HashReading reading, hasher_.Resume(std::move(partial), file));
  RETURN_IF_ERROR(RecordReading(members, file, std::move(reading), result));
  return result;
}

std::optional<HashProgress> DedupeEngine::hash_progress() const {
  if (hashing_ == nullptr) return std::nullopt;
  return HashProgress{AbsPath(hashing_->file.path), hashing_->offset(), hashing_->file.size};
}

absl::Status DedupeEngine::PrefetchAhead(const std::vector<FileRecord>& members,
                                         absl::Time now) {
  // At most this many later sizes are read from the index for hints in one step.
  constexpr size_t kMaxLookaheadPerStep = 64;
  if (!read_ahead_.enabled()) return absl::OkStatus();
  auto hint = [&](const std::vector<FileRecord>& group) {
    for (const ReadAheadWindow::Hint& h : read_ahead_.Take(group, now, attempted_)) {
      files_->Prefetch(RefOf(*h.file), h.bytes);
    }
  };
  // The current group from a cursor: the members before it were hinted or hashed.
  for (const ReadAheadWindow::Hint& h :
       read_ahead_.TakeFrom(members, group_.inodes(), now, attempted_, &group_.hint_cursor())) {
    files_->Prefetch(RefOf(*h.file), h.bytes);
  }
  for (size_t n = 0; n < kMaxLookaheadPerStep && !read_ahead_.full() &&
                     read_ahead_.next_size() < sizes_.size();
       ++n) {
    ASSIGN_OR_RETURN(std::vector<FileRecord> next,
                     index_->FilesOfSize(sizes_[read_ahead_.next_size()]));
    read_ahead_.SizeLookedAt();
    hint(next);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> DedupeEngine::LearnFullGroupPrefixes() {
  // The prefixes of the groups that have full hashes (cached for the engine's life), so a
  // prefix-only member that matches one of them is read in full. Each full hash of the
  // group is looked at once.
  uint64_t bytes_read = 0;
  for (const std::string& full_hash : group_.TakeNewFullHashes()) {
    ASSIGN_OR_RETURN(PrefixReading prefix, PrefixOfFullGroup(full_hash));
    bytes_read += prefix.bytes_read;
    if (prefix.digest.has_value()) {
      full_prefixes_.insert(*prefix.digest);
    } else if (group_.FullGroup(full_hash) != nullptr) {
      unknown_full_prefix_ = true;
    }
  }
  return bytes_read;
}

absl::StatusOr<StepResult> DedupeEngine::HashSome(std::vector<FileRecord>& members,
                                                  HashTask task, absl::Time now) {
  // Small files of one size group are hashed several to a step.
  constexpr int kMaxFilesPerStep = 64;
  constexpr uint64_t kMaxBytesPerStep = uint64_t{8} << 20;
  StepResult total;
  uint64_t side_bytes = 0;
  for (int n = 0; n < kMaxFilesPerStep; ++n) {
    ASSIGN_OR_RETURN(StepResult one, HashMember(members, task, now));
    if (n == 0) {
      total = one;
    } else {
      total.path = one.path;
      total.detail = one.detail;
      total += one;  // keep what was done; a failed member's counts report the trouble
    }
    if (one.kind != StepResult::Kind::kHashed && one.kind != StepResult::Kind::kHashCopied) {
      break;
    }
    if (total.bytes_read >= kMaxBytesPerStep) break;
    if (options_.should_stop && options_.should_stop()) break;
    if (group_.HasPrefixMembers()) {
      ASSIGN_OR_RETURN(uint64_t learnt, LearnFullGroupPrefixes());
      side_bytes += learnt;
    }
    std::optional<HashTask> next =
        group_.NextHashTask(now, options_.prefix_bytes, attempted_, full_prefixes_);
    if (!next.has_value()) break;
    task = *next;
  }
  total.bytes_read += side_bytes;
  if (total.kind == StepResult::Kind::kHashCopied &&
      total.files_hashed + total.prefixes_hashed > 0) {
    total.kind = StepResult::Kind::kHashed;  // some of the hashes were read
  }
  return total;
}

}  // namespace btrdupd
