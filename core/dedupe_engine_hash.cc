// DedupeEngine, stage 1: hashing one member of a size group (see dedupe_engine.h).

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
#include "core/sha256.h"

namespace btrdupd {

using engine_internal::kMaxHashCopyChecks;
using engine_internal::Matches;

// Reads one open file from its start, feeding a prefix digest (first `prefix_bytes`) and
// a whole-file digest at once, so a prefix that turns out to match can be continued to
// the whole file without reading its start again.
class DedupeEngine::FileHasher {
 public:
  FileHasher(std::unique_ptr<SequentialFile> file, FileStat before, uint64_t prefix_bytes,
             Sha256 prefix, Sha256 full, std::string* buffer,
             const std::function<bool()>* should_stop)
      : file_(std::move(file)),
        before_(before),
        prefix_bytes_(prefix_bytes),
        prefix_(std::move(prefix)),
        full_(std::move(full)),
        buffer_(buffer),
        should_stop_(should_stop) {}

  // Reads until `end` bytes were read or the file ends. Returns false at end of file,
  // Cancelled when should_stop says so. Holes are skipped, not read (SequentialFile::
  // NextData): only data is fed to the digests, and the holes' places and lengths are
  // added when a digest is finished, so the same bytes with another hole layout hash
  // differently, and the result does not depend on how the reads were cut.
  absl::StatusOr<bool> ReadTo(uint64_t end) {
    while (offset_ < end) {
      if (should_stop_ != nullptr && *should_stop_ && (*should_stop_)()) {
        return absl::CancelledError("interrupted");
      }
      if (data_left_ == 0) {
        ASSIGN_OR_RETURN(SequentialFile::DataSpan span, file_->NextData());
        if (span.hole > 0) {
          AddHole(offset_, span.hole);
          offset_ += span.hole;
        }
        data_left_ = span.data;
        if (offset_ >= end) break;
        if (data_left_ == 0) data_left_ = UINT64_MAX;  // at the end: the read says so
      }
      size_t want = static_cast<size_t>(
          std::min<uint64_t>({buffer_->size(), end - offset_, data_left_}));
      ASSIGN_OR_RETURN(size_t got, file_->Read(buffer_->data(), want));
      if (got == 0) return false;
      if (data_left_ != UINT64_MAX) data_left_ -= got;
      data_read_ += got;
      absl::string_view chunk(buffer_->data(), got);
      if (offset_ < prefix_bytes_) {
        size_t in_prefix = static_cast<size_t>(std::min<uint64_t>(got, prefix_bytes_ - offset_));
        RETURN_IF_ERROR(prefix_.Update(chunk.substr(0, in_prefix)));
      }
      RETURN_IF_ERROR(full_.Update(chunk));
      offset_ += got;
    }
    return true;
  }

  // True if the file ends exactly at the current offset (one extra read).
  absl::StatusOr<bool> AtEnd() {
    char probe[1];
    ASSIGN_OR_RETURN(size_t got, file_->Read(probe, 1));
    if (got != 0) ++offset_;
    return got == 0;
  }

  // True if fstat still says what it said when the file was opened.
  absl::StatusOr<bool> Unchanged() {
    ASSIGN_OR_RETURN(FileStat after, file_->Stat());
    return after == before_;
  }

  absl::StatusOr<std::string> PrefixDigest() {
    RETURN_IF_ERROR(prefix_.Update(HoleLayout(prefix_bytes_)));
    return prefix_.Finish();
  }
  absl::StatusOr<std::string> FullDigest() {
    RETURN_IF_ERROR(full_.Update(HoleLayout(UINT64_MAX)));
    return full_.Finish();
  }
  // Where the reading is (holes included).
  uint64_t offset() const { return offset_; }
  // Bytes of data read (holes excluded).
  uint64_t data_read() const { return data_read_; }

 private:
  std::unique_ptr<SequentialFile> file_;
  const FileStat before_;
  const uint64_t prefix_bytes_;
  Sha256 prefix_;
  Sha256 full_;
  std::string* buffer_;
  // Records a hole, merged with the one before when they touch.
  void AddHole(uint64_t start, uint64_t length) {
    if (!holes_.empty() && holes_.back().first + holes_.back().second == start) {
      holes_.back().second += length;
    } else {
      holes_.emplace_back(start, length);
    }
  }

  // The holes below `limit` ("" for a file without holes, so such a file hashes as the
  // plain SHA-256 of its bytes): a marker, then (start, length) of each, 8 bytes each,
  // little-endian.
  std::string HoleLayout(uint64_t limit) const {
    std::string out;
    for (const auto& [start, length] : holes_) {
      if (start >= limit) break;
      if (out.empty()) out.assign("\0btrdupd-holes", 14);
      const uint64_t clipped = std::min(length, limit - start);
      for (uint64_t v : {start, clipped}) {
        for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
      }
    }
    return out;
  }

  const std::function<bool()>* should_stop_;
  uint64_t offset_ = 0;
  uint64_t data_read_ = 0;
  uint64_t data_left_ = 0;  // of the current data span (MAX: unknown)
  std::vector<std::pair<uint64_t, uint64_t>> holes_;  // (start, length), merged
};

absl::StatusOr<std::unique_ptr<DedupeEngine::FileHasher>> DedupeEngine::OpenHasher(
    const FileRecord& file, StepResult& result, bool* handled) {
  *handled = false;
  const std::string path = AbsPath(file.path);
  absl::StatusOr<std::unique_ptr<SequentialFile>> opened = files_->OpenForRead(RefOf(file));
  if (!opened.ok()) {
    *handled = true;
    result.kind = StepResult::Kind::kFileSkipped;
    if (IsTreeChanged(opened.status())) {
      RETURN_IF_ERROR(BackToScanner(file, opened.status(), result));
    } else if (absl::IsNotFound(opened.status())) {
      result.detail = absl::StrCat(path, ": vanished");
      RETURN_IF_ERROR(RemoveVanished(file, result));
    } else {
      RETURN_IF_ERROR(
          Skip(file, SkipKindOfError(opened.status(), SkipKind::kUnreadable),
               absl::StrCat("cannot read: ", opened.status().message()), result));
    }
    return nullptr;
  }
  absl::StatusOr<FileStat> before = (*opened)->Stat();
  if (!before.ok() || !Matches(*before, file)) {
    *handled = true;
    RETURN_IF_ERROR(Changed(file, result));
    return nullptr;
  }
  ASSIGN_OR_RETURN(Sha256 prefix, Sha256::Create());
  ASSIGN_OR_RETURN(Sha256 full, Sha256::Create());
  if (buffer_.size() != std::max<size_t>(options_.read_buffer_bytes, 4096)) {
    buffer_.assign(std::max<size_t>(options_.read_buffer_bytes, 4096), '\0');
  }
  return std::make_unique<FileHasher>(std::move(*opened), *before, options_.prefix_bytes,
                                      std::move(prefix), std::move(full), &buffer_,
                                      &options_.should_stop);
}

absl::Status DedupeEngine::Changed(const FileRecord& file, StepResult& result) {
  attempted_.insert(file.id);
  ++result.files_differ;
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
  auto same = index.by_inode.find(std::make_pair(file.subvol_id, file.ino));
  if (same == index.by_inode.end()) return absl::OkStatus();
  for (size_t i : same->second) {
    FileRecord& m = members[i];
    if (m.size != size) continue;
    RETURN_IF_ERROR(index_->SetHash(m.id, state, value));
    m.hash_state = state;  // keep the step's copy of the group current
    m.hash = value;
    NoteHashed(members, i);
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

DedupeEngine::MemberIndex& DedupeEngine::IndexMembers(const std::vector<FileRecord>& members) {
  MemberIndex& index = member_index_;
  const int64_t first_id = members.empty() ? 0 : members.front().id;
  const int64_t last_id = members.empty() ? 0 : members.back().id;
  if (index.members == &members && index.count == members.size() &&
      index.step == stats_.steps && index.first_id == first_id && index.last_id == last_id) {
    return index;
  }
  index = MemberIndex();
  index.members = &members;
  index.count = members.size();
  index.first_id = first_id;
  index.last_id = last_id;
  index.step = stats_.steps;
  for (size_t i = 0; i < members.size(); ++i) {
    index.by_path[PathInSubvolume(members[i])].push_back(i);
    index.by_inode[std::make_pair(members[i].subvol_id, members[i].ino)].push_back(i);
    NoteHashed(members, i);
  }
  return index;
}

void DedupeEngine::NoteHashed(const std::vector<FileRecord>& members, size_t i) {
  const FileRecord& m = members[i];
  if (m.hash_state == HashState::kNone) return;
  const int k = m.hash_state == HashState::kFull ? 0 : 1;
  if (member_index_.rep_hashes[k].insert(m.hash).second) member_index_.reps[k].push_back(i);
}

absl::StatusOr<bool> DedupeEngine::TryCopyHash(std::vector<FileRecord>& members,
                                               const FileRecord& file, bool prefix_task,
                                               StepResult& result) {
  const FileRef ref = RefOf(file);
  // Candidates: first the members at the same path inside their own subvolume (the
  // snapshots of this file), then one member per other hash; at most kMaxHashCopyChecks
  // are checked, so no more are collected (from the step's MemberIndex, not by walking
  // the group).
  MemberIndex& index = IndexMembers(members);
  std::vector<size_t> order;
  absl::flat_hash_set<size_t> listed;
  auto add = [&](size_t i, HashState wanted) {
    const FileRecord& other = members[i];
    if (SameInode(other, file) || other.hash_state != wanted) return;
    if (listed.insert(i).second) order.push_back(i);
  };
  const std::string own = PathInSubvolume(file);
  auto same_path = index.by_path.find(own);
  for (HashState wanted : {HashState::kFull, HashState::kPrefix}) {
    if (wanted == HashState::kPrefix && !prefix_task) break;
    if (same_path == index.by_path.end()) break;
    for (size_t i : same_path->second) {
      if (order.size() >= static_cast<size_t>(kMaxHashCopyChecks)) break;
      add(i, wanted);
    }
  }
  for (HashState wanted : {HashState::kFull, HashState::kPrefix}) {
    if (wanted == HashState::kPrefix && !prefix_task) break;
    for (size_t i : index.reps[wanted == HashState::kFull ? 0 : 1]) {
      if (order.size() >= static_cast<size_t>(kMaxHashCopyChecks)) break;
      add(i, wanted);
    }
  }
  // No hashed member to copy from (the group's first file): no FIEMAP needed.
  if (order.empty()) return false;
  absl::StatusOr<bool> shared = files_->HasSharedExtents(ref);
  if (!shared.ok() || !*shared) return false;
  for (size_t i : order) {
    const FileRecord& other = members[i];
    const FileRef other_ref = RefOf(other);
    absl::StatusOr<bool> same = files_->SharesAllExtents(other_ref, ref);
    if (!same.ok() || !*same) continue;
    absl::StatusOr<FileStat> other_stat = files_->Stat(other_ref);
    if (!other_stat.ok() || !Matches(*other_stat, other)) continue;
    const HashState state = other.hash_state;
    const std::string hash = other.hash;
    RETURN_IF_ERROR(SetHashForInode(members, file, state, hash));
    ++stats_.hashes_copied;
    result.hashes_copied = 1;
    result.kind = StepResult::Kind::kHashCopied;
    result.detail = absl::StrCat("shares all extents with ", other_ref.display);
    return true;
  }
  return false;
}

absl::StatusOr<std::optional<std::string>> DedupeEngine::PrefixOfFullGroup(
    const std::vector<FileRecord>& members, const std::string& full_hash,
    StepResult& result) {
  auto it = prefix_of_full_.find(full_hash);
  if (it != prefix_of_full_.end()) return std::optional<std::string>(it->second);
  for (const FileRecord& rep : members) {
    if (rep.hash_state != HashState::kFull || rep.hash != full_hash) continue;
    absl::StatusOr<std::unique_ptr<SequentialFile>> opened =
        files_->OpenForRead(RefOf(rep));
    if (!opened.ok()) continue;
    absl::StatusOr<FileStat> before = (*opened)->Stat();
    if (!before.ok() || !Matches(*before, rep)) continue;
    ASSIGN_OR_RETURN(Sha256 prefix, Sha256::Create());
    ASSIGN_OR_RETURN(Sha256 full, Sha256::Create());
    if (buffer_.empty()) buffer_.assign(std::max<size_t>(options_.read_buffer_bytes, 4096), '\0');
    FileHasher hasher(std::move(*opened), *before, options_.prefix_bytes, std::move(prefix),
                      std::move(full), &buffer_, &options_.should_stop);
    absl::StatusOr<bool> more = hasher.ReadTo(options_.prefix_bytes);
    result.bytes_read += hasher.data_read();
    if (!more.ok() || !*more) continue;
    absl::StatusOr<bool> unchanged = hasher.Unchanged();
    if (!unchanged.ok() || !*unchanged) continue;
    ASSIGN_OR_RETURN(std::string digest, hasher.PrefixDigest());
    prefix_of_full_[full_hash] = digest;
    return std::optional<std::string>(digest);
  }
  return std::optional<std::string>();  // unknown
}

absl::StatusOr<StepResult> DedupeEngine::HashMember(std::vector<FileRecord>& members,
                                                    const HashTask& task, absl::Time now) {
  const FileRecord file = members[task.member];  // a copy: `members` is updated below
  const std::string path = AbsPath(file.path);
  HintConsumed(file.id);
  StepResult result;
  result.kind = StepResult::Kind::kHashed;
  result.path = path;
  result.size = file.size;

  absl::StatusOr<FileAttributes> attrs = files_->GetAttributes(RefOf(file));
  if (!attrs.ok()) {
    result.kind = StepResult::Kind::kFileSkipped;
    if (IsTreeChanged(attrs.status())) {
      RETURN_IF_ERROR(BackToScanner(file, attrs.status(), result));
    } else if (absl::IsNotFound(attrs.status())) {
      result.detail = absl::StrCat(path, ": vanished");
      RETURN_IF_ERROR(RemoveVanished(file, result));
    } else {
      RETURN_IF_ERROR(Skip(
          file, SkipKindOfError(attrs.status(), SkipKind::kUnreadable),
          absl::StrCat("cannot read attributes: ", attrs.status().message()), result));
    }
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

  bool handled = false;
  ASSIGN_OR_RETURN(std::unique_ptr<FileHasher> hasher, OpenHasher(file, result, &handled));
  if (handled) return result;

  // A read that fails or is interrupted ends the step without a hash: an interruption
  // records nothing (the file is hashed next time), a read error skips the file.
  auto read_failed = [&](const absl::Status& status) -> absl::StatusOr<StepResult> {
    result.bytes_read = hasher->data_read();
    if (absl::IsCancelled(status)) {
      result.kind = StepResult::Kind::kExamined;
      result.detail = "interrupted";
      return result;
    }
    result.kind = StepResult::Kind::kFileSkipped;
    RETURN_IF_ERROR(Skip(file, SkipKindOfError(status, SkipKind::kUnreadable),
                         absl::StrCat("read error: ", status.message()), result));
    return result;
  };

  bool whole = !task.prefix;
  std::string prefix_digest;
  if (task.prefix) {
    absl::StatusOr<bool> read = hasher->ReadTo(options_.prefix_bytes);
    if (!read.ok()) return read_failed(read.status());
    const bool more = *read;
    result.bytes_read = hasher->data_read();
    if (!more) {
      RETURN_IF_ERROR(Changed(file, result));  // shorter than the index says
      return result;
    }
    ASSIGN_OR_RETURN(prefix_digest, hasher->PrefixDigest());
    // A prefix that matches another member's prefix, or the prefix of a group that already
    // has full hashes (or a group whose prefix cannot be read), means reading on now, in
    // the same pass over the file. (A matching prefix-only member then finds this file's
    // full hash through the engine's prefix cache; see NeedsFullGroupPrefixes.)
    absl::flat_hash_set<std::string> full_hashes;
    for (const FileRecord& m : members) {
      if (SameInode(m, file)) continue;
      if (m.hash_state == HashState::kFull) full_hashes.insert(m.hash);
      if (m.hash_state == HashState::kPrefix && m.hash == prefix_digest) whole = true;
    }
    for (const std::string& full_hash : full_hashes) {
      if (whole) break;
      StepResult side;  // bytes read for the other group's prefix
      ASSIGN_OR_RETURN(std::optional<std::string> other,
                       PrefixOfFullGroup(members, full_hash, side));
      result.bytes_read += side.bytes_read;
      if (!other.has_value() || *other == prefix_digest) {
        whole = true;
        break;
      }
    }
  } else if (file.hash_state == HashState::kPrefix) {
    prefix_digest = file.hash;
  }
  const bool prefix_from_read = whole && prefix_digest.empty();

  if (whole) {
    const uint64_t before_whole = hasher->data_read();
    absl::StatusOr<bool> read = hasher->ReadTo(file.size);
    bool ends_here = false;  // nothing after file.size: it did not grow
    if (read.ok()) {
      absl::StatusOr<bool> end = hasher->AtEnd();
      if (end.ok()) {
        ends_here = *end;
      } else {
        read = end.status();
      }
    }
    if (!read.ok()) {
      const uint64_t prefix_part = result.bytes_read;
      absl::StatusOr<StepResult> failed = read_failed(read.status());
      if (failed.ok()) failed->bytes_read = prefix_part + hasher->data_read() - before_whole;
      return failed;
    }
    const bool more = *read;
    result.bytes_read += hasher->data_read() - before_whole;
    (void)more;  // a short file shows as offset != size
    if (!ends_here || hasher->offset() != file.size) {
      RETURN_IF_ERROR(Changed(file, result));
      return result;
    }
  }
  absl::StatusOr<bool> unchanged = hasher->Unchanged();
  if (!unchanged.ok() || !*unchanged) {
    RETURN_IF_ERROR(Changed(file, result));
    return result;
  }
  if (whole && hasher->data_read() == 0 && file.size > 0) {
    // Only holes: nothing on disk to share, so not a dedupe candidate at all.
    result.kind = StepResult::Kind::kFileSkipped;
    RETURN_IF_ERROR(Skip(file, SkipKind::kAllHoles, "no data on disk", result));
    return result;
  }
  if (whole) {
    ASSIGN_OR_RETURN(std::string digest, hasher->FullDigest());
    if (prefix_from_read) {
      ASSIGN_OR_RETURN(prefix_digest, hasher->PrefixDigest());
    }
    RETURN_IF_ERROR(SetHashForInode(members, file, HashState::kFull, digest));
    if (file.size > 2 * options_.prefix_bytes && !prefix_digest.empty()) {
      prefix_of_full_[digest] = prefix_digest;
    }
    ++stats_.files_hashed;
    result.files_hashed = 1;
  } else {
    RETURN_IF_ERROR(SetHashForInode(members, file, HashState::kPrefix, prefix_digest));
    ++stats_.prefixes_hashed;
    // Not counted as a hashed file: only its first bytes were read (bytes_read says so),
    // and it is counted once its full hash is computed, if ever.
    result.files_hashed = 0;
    result.prefixes_read = 1;
    result.detail = "prefix";
  }
  return result;
}

absl::Status DedupeEngine::PrefetchAhead(const std::vector<FileRecord>& members,
                                         absl::Time now) {
  // At most this many later sizes are read from the index for hints in one step.
  constexpr size_t kMaxLookaheadPerStep = 64;
  if (options_.prefetch_bytes == 0) return absl::OkStatus();
  HintMembers(members, now);
  for (size_t n = 0; n < kMaxLookaheadPerStep && hinted_bytes_ < options_.prefetch_bytes &&
                     lookahead_ < sizes_.size();
       ++n) {
    ASSIGN_OR_RETURN(std::vector<FileRecord> next, index_->FilesOfSize(sizes_[lookahead_]));
    ++lookahead_;
    HintMembers(next, now);
  }
  return absl::OkStatus();
}

void DedupeEngine::HintMembers(const std::vector<FileRecord>& members, absl::Time now) {
  if (members.empty()) return;
  const size_t inodes = CountInodes(members);
  if (inodes < 2) return;
  const uint64_t prefix = options_.prefix_bytes;
  for (const FileRecord& m : members) {  // ascending id: the order they are hashed in
    if (hinted_bytes_ >= options_.prefetch_bytes) break;
    if (m.hash_state != HashState::kNone || m.dedupe_state == DedupeState::kSkipped ||
        !IsEligible(m, now) || attempted_.contains(m.id) || hinted_.contains(m.id)) {
      continue;
    }
    // What the first read of it will take (see NextHashTask): the whole of a small file,
    // the prefix where a prefix stage comes first, else the whole file (capped).
    const uint64_t bytes = m.size <= 2 * prefix ? m.size
                           : inodes > 2          ? prefix
                                                 : std::min(m.size, options_.prefetch_file_bytes);
    files_->Prefetch(RefOf(m), bytes);
    hinted_[m.id] = Hint{m.size, bytes};
    hinted_bytes_ += bytes;
  }
}

void DedupeEngine::HintConsumed(int64_t file_id) {
  auto it = hinted_.find(file_id);
  if (it == hinted_.end()) return;
  hinted_bytes_ -= it->second.bytes;
  hinted_.erase(it);
}

void DedupeEngine::ForgetHintsUpTo(uint64_t size) {
  // Sizes are visited in ascending order: hints of files up to `size` will not be read
  // in this pass any more (FileAccess drops them from the cache).
  for (auto it = hinted_.begin(); it != hinted_.end();) {
    if (it->second.size <= size) {
      hinted_bytes_ -= it->second.bytes;
      hinted_.erase(it++);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<absl::flat_hash_set<std::string>> DedupeEngine::LearnFullGroupPrefixes(
    const std::vector<FileRecord>& members, absl::Time now, uint64_t* bytes_read) {
  absl::flat_hash_set<std::string> prefixes;
  if (!NeedsFullGroupPrefixes(members, now, attempted_)) return prefixes;
  // Learn the prefixes of the groups that have full hashes (cached for the engine's life),
  // so a prefix-only member that matches one of them is read in full.
  absl::flat_hash_set<std::string> full_hashes;
  for (const FileRecord& m : members) {
    if (m.hash_state == HashState::kFull) full_hashes.insert(m.hash);
  }
  for (const std::string& full_hash : full_hashes) {
    StepResult side;
    ASSIGN_OR_RETURN(std::optional<std::string> prefix,
                     PrefixOfFullGroup(members, full_hash, side));
    *bytes_read += side.bytes_read;
    if (prefix.has_value()) prefixes.insert(*prefix);
  }
  return prefixes;
}

absl::StatusOr<StepResult> DedupeEngine::HashSome(std::vector<FileRecord>& members,
                                                  HashTask task, absl::Time now) {
  // Small files of one size group are hashed several to a step (the group is read from
  // the index once per step, which matters for groups of thousands).
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
      total.files_hashed += one.files_hashed;
      total.prefixes_read += one.prefixes_read;
      total.hashes_copied += one.hashes_copied;
      total.bytes_read += one.bytes_read;
    }
    if (one.kind != StepResult::Kind::kHashed && one.kind != StepResult::Kind::kHashCopied) {
      if (n > 0) {
        // Keep what was done; report the trouble.
        total.files_skipped += one.files_skipped;
        total.skipped += one.skipped;
        total.files_differ += one.files_differ;
        total.files_removed += one.files_removed;
      }
      break;
    }
    if (total.bytes_read >= kMaxBytesPerStep) break;
    if (options_.should_stop && options_.should_stop()) break;
    ASSIGN_OR_RETURN(absl::flat_hash_set<std::string> full_group_prefixes,
                     LearnFullGroupPrefixes(members, now, &side_bytes));
    std::optional<HashTask> next = NextHashTask(members, now, options_.prefix_bytes, attempted_,
                                                full_group_prefixes);
    if (!next.has_value()) break;
    task = *next;
  }
  total.bytes_read += side_bytes;
  return total;
}

}  // namespace btrdupd
