// DedupeEngine, stages 5-7: one batch through the backend, FIEMAP verification of every
// outcome, and the retry of destinations an older kernel refused with EROFS because their
// snapshot is read-only, with the flag cleared for that retry only (see dedupe_engine.h).

#include <map>
#include <optional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/config.h"
#include "core/dedupe_engine.h"
#include "core/dedupe_engine_internal.h"
#include "core/freed_space.h"

namespace btrdupd {
namespace {

// Clears a subvolume's read-only flag for the length of one retry batch. The flip is recorded
// (and committed) in the index before the flag changes, so a killed run is repaired by
// RestorePendingReadOnlyFlips(); Restore() (or the destructor) sets the flag back and
// drops the record.
class ReadOnlyFlipGuard {
 public:
  static absl::StatusOr<std::unique_ptr<ReadOnlyFlipGuard>> Begin(VolumeIndex* index,
                                                                 FileAccess* files,
                                                                 const ReadOnlyFlip& flip,
                                                                 SubvolumeRef subvol) {
    // The record must be durable before the flag changes: end the step's batch first.
    RETURN_IF_ERROR(index->CommitBatch());
    RETURN_IF_ERROR(index->RecordReadOnlyFlip(flip));
    RETURN_IF_ERROR(index->BeginBatch());
    absl::Status cleared = files->SetSubvolumeReadOnly(subvol, false);
    if (!cleared.ok()) {
      RETURN_IF_ERROR(index->ClearReadOnlyFlip(flip.subvol_id));
      return cleared;
    }
    return std::unique_ptr<ReadOnlyFlipGuard>(
        new ReadOnlyFlipGuard(index, files, flip.subvol_id, std::move(subvol)));
  }

  ~ReadOnlyFlipGuard() { Restore().IgnoreError(); }

  // Sets the flag again. On failure the record stays for the next start to retry.
  absl::Status Restore() {
    if (restored_) return absl::OkStatus();
    RETURN_IF_ERROR(files_->SetSubvolumeReadOnly(subvol_, true));
    restored_ = true;
    return index_->ClearReadOnlyFlip(subvol_id_);
  }

 private:
  ReadOnlyFlipGuard(VolumeIndex* index, FileAccess* files, uint64_t subvol_id,
                    SubvolumeRef subvol)
      : index_(index), files_(files), subvol_id_(subvol_id), subvol_(std::move(subvol)) {}

  VolumeIndex* const index_;
  FileAccess* const files_;
  const uint64_t subvol_id_;
  const SubvolumeRef subvol_;
  bool restored_ = false;
};

}  // namespace

absl::Status DedupeEngine::VolumeCondition(const absl::Status& error) {
  if (absl::IsResourceExhausted(error)) {
    return absl::ResourceExhaustedError(
        absl::StrCat(volume_root_, ": no space left for a dedupe (", error.message(),
                     "); deduping waits until there is space again"));
  }
  if (engine_internal::IsReadOnlyRefusal(error)) {
    // EROFS: a read-only snapshot (per file), or the whole filesystem went read-only
    // (btrfs does that after a write error; or `mount -o remount,ro`). Asked afresh: the
    // cached flags may predate the remount.
    uint64_t root_id = engine_internal::kTopLevelSubvolume;
    for (const SubvolumeRecord& s : subvolumes_) {
      if (s.path.empty()) root_id = s.id;
    }
    absl::StatusOr<SubvolumeFlags> root = files_->GetSubvolumeFlags(SubvolRefOf(root_id, ""));
    if (root.ok() && root->on_read_only_mount) {
      return absl::UnavailableError(absl::StrCat(
          volume_root_, ": the filesystem is mounted read-only (", error.message(),
          "); deduping waits until it is writable again"));
    }
  }
  return absl::OkStatus();
}

absl::Status DedupeEngine::AddFreedToIndex(uint64_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::optional<std::string> text, index_->GetMeta(kBytesFreedMetaKey));
  uint64_t total = 0;
  if (text.has_value() && !absl::SimpleAtoi(*text, &total)) total = 0;
  return index_->SetMeta(kBytesFreedMetaKey, absl::StrCat(total + bytes));
}

absl::Status DedupeEngine::DedupeBatch(const FileRecord& reference,
                                       const std::vector<const FileRecord*>& batch,
                                       uint64_t flip_subvol, StepResult& result) {
  DedupeRequest request;
  request.reference = RefOf(reference);
  request.reference_path = request.reference.display;
  request.size = reference.size;
  for (const FileRecord* d : batch) {
    attempted_.insert(d->id);
    request.destinations.push_back(RefOf(*d));
    request.destination_paths.push_back(request.destinations.back().display);
  }

  // What each destination holds before the call, to count what the dedupe frees
  // (core/freed_space.h). A destination whose extents cannot be read counts nothing.
  std::vector<std::optional<std::vector<HeldExtent>>> held(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    absl::StatusOr<std::vector<HeldExtent>> extents =
        files_->HeldExtents(request.destinations[i], /*resolve_shared=*/true);
    if (extents.ok()) held[i] = std::move(*extents);
  }
  std::vector<DedupedHolder> deduped;

  absl::StatusOr<std::vector<DedupeOutcome>> outcomes;
  std::string restore_error;
  {
    std::unique_ptr<ReadOnlyFlipGuard> guard;
    if (flip_subvol != 0) {
      ASSIGN_OR_RETURN(SubvolInfo subvol, SubvolumeOf(flip_subvol));
      ReadOnlyFlip flip;
      flip.subvol_id = flip_subvol;
      flip.path = subvol.relative_path;
      flip.flipped_at = clock_->Now();
      absl::StatusOr<std::unique_ptr<ReadOnlyFlipGuard>> begun =
          ReadOnlyFlipGuard::Begin(index_, files_, flip,
                                   SubvolRefOf(flip_subvol, subvol.relative_path));
      if (!begun.ok()) {
        for (const FileRecord* d : batch) {
          RETURN_IF_ERROR(Skip(*d, SkipKind::kReadOnly,
                               absl::StrCat("read-only snapshot refused the dedupe (EROFS) "
                                            "and cannot be made writable: ",
                                            begun.status().message()),
                               result));
        }
        return absl::OkStatus();
      }
      guard = std::move(*begun);
      ++result.read_only_flips;
    }
    ++result.backend_calls;
    outcomes = backend_->Dedupe(request);
    if (guard != nullptr) {
      absl::Status restored = guard->Restore();
      if (!restored.ok()) {
        restore_error = absl::StrCat("could not restore read-only flag (retried at next start): ",
                                     restored.message());
      }
    }
  }
  if (!restore_error.empty()) result.detail = restore_error;

  if (!outcomes.ok()) {
    RETURN_IF_ERROR(VolumeCondition(outcomes.status()));
    for (const FileRecord* d : batch) attempted_.erase(d->id);
    // The backend does not work at all: a volume-level error, no file's fault.
    if (IsBackendFailure(outcomes.status())) return outcomes.status();
    // The request as a whole failed: blame the reference; its copies wait for another.
    absl::StatusOr<FileStat> stat = files_->Stat(request.reference);
    if (!stat.ok() && absl::IsNotFound(stat.status())) return RemoveVanished(reference, result);
    if (!stat.ok() && IsTreeChanged(stat.status())) {
      return BackToScanner(reference, stat.status(), result);
    }
    if (IsTreeChanged(outcomes.status())) {
      return BackToScanner(reference, outcomes.status(), result);
    }
    return Skip(reference, SkipKind::kBadReference,
                absl::StrCat("cannot be used as reference: ", outcomes.status().message()),
                result);
  }
  // Destinations refused with EROFS on a read-only snapshot that may be flipped: retried
  // below, one batch per subvolume, with its flag cleared for that batch only.
  std::map<uint64_t, std::vector<const FileRecord*>> flip_retries;
  const StabilityPolicy policy = ToStabilityPolicy(config_);
  for (size_t i = 0; i < batch.size(); ++i) {
    const FileRecord& dest = *batch[i];
    const std::string& dest_path = request.destination_paths[i];
    if (i >= outcomes->size()) {
      RETURN_IF_ERROR(Skip(dest, SkipKind::kDedupeFailed, "backend returned no outcome", result));
      continue;
    }
    const DedupeOutcome& outcome = (*outcomes)[i];
    switch (outcome.kind) {
      case DedupeOutcome::Kind::kDeduped: {
        absl::StatusOr<bool> shared =
            files_->SharesAllExtents(request.reference, request.destinations[i]);
        if (shared.ok() && *shared) {
          ++result.files_deduped;
          result.bytes_shared += dest.size;
          RETURN_IF_ERROR(index_->RecordSharing(dest.id, DedupeState::kDeduped, reference.id,
                                                clock_->Now()));
          ASSIGN_OR_RETURN(std::vector<InodeKey> copies,
                           DedupeImpliedCopies(reference, request.reference, dest, result));
          if (held[i].has_value()) {
            deduped.push_back(DedupedHolder{InodeKey{dest.subvol_id, dest.ino}, *held[i]});
            // Row-less snapshot copies held the same extents as the destination (that is
            // what makes them implied): deduped too, they no longer hold them.
            for (const InodeKey& copy : copies) {
              deduped.push_back(DedupedHolder{copy, *held[i]});
            }
          }
        } else if (!shared.ok() && absl::IsNotFound(shared.status())) {
          RETURN_IF_ERROR(RemoveVanished(dest, result));
        } else if (!shared.ok() && IsTreeChanged(shared.status())) {
          RETURN_IF_ERROR(BackToScanner(dest, shared.status(), result));
        } else {
          RETURN_IF_ERROR(Skip(
              dest,
              shared.ok() ? SkipKind::kNotShared
                          : SkipKindOfError(shared.status(), SkipKind::kNotShared),
              shared.ok() ? "backend reported success but FIEMAP shows extents not shared"
                          : absl::StrCat("cannot verify extents: ", shared.status().message()),
              result));
        }
        break;
      }
      case DedupeOutcome::Kind::kDiffers:
        ++result.files_changed;
        RETURN_IF_ERROR(index_->InvalidateFile(dest.id, clock_->Now(), policy));
        break;
      case DedupeOutcome::Kind::kFailed:
        RETURN_IF_ERROR(VolumeCondition(outcome.error));
        if (flip_subvol == 0 && engine_internal::IsReadOnlyRefusal(outcome.error)) {
          ASSIGN_OR_RETURN(SubvolInfo subvol, SubvolumeOf(dest.subvol_id));
          if (engine_internal::FlipEligible(subvol.flags)) {
            flip_retries[subvol.id].push_back(&dest);
            break;
          }
        }
        if (IsTreeChanged(outcome.error)) {
          RETURN_IF_ERROR(BackToScanner(dest, outcome.error, result));
        } else if (absl::IsNotFound(outcome.error)) {
          RETURN_IF_ERROR(RemoveVanished(dest, result));
        } else if (absl::IsUnavailable(outcome.error)) {
          // EAGAIN (a send is running on it), EBUSY: left pending, tried again next pass.
          ++result.files_retry_later;
          if (result.detail.empty()) {
            result.detail = absl::StrCat(dest_path, ": ", outcome.error.message(),
                                         " (retried next pass)");
          }
        } else {
          RETURN_IF_ERROR(Skip(dest, SkipKindOfError(outcome.error, SkipKind::kDedupeFailed),
                               outcome.error.ok() ? std::string("dedupe failed")
                                                  : std::string(outcome.error.message()),
                               result));
        }
        break;
    }
  }
  if (!deduped.empty()) {
    const uint64_t freed = FreedBytes(deduped);
    result.bytes_freed += freed;
    RETURN_IF_ERROR(AddFreedToIndex(freed));
  }
  for (const auto& [subvol_id, retry] : flip_retries) {
    RETURN_IF_ERROR(DedupeBatch(reference, retry, subvol_id, result));
    // A retry that failed as a whole gave up the reference (its copies wait for another).
    if (!attempted_.contains(retry.front()->id)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<InodeKey>> DedupeEngine::DedupeImpliedCopies(
    const FileRecord& reference, const FileRef& reference_ref, const FileRecord& dest,
    StepResult& result) {
  std::vector<InodeKey> now_shared;
  ASSIGN_OR_RETURN(std::vector<ImpliedCopy> copies, index_->ImpliedCopies(dest));
  if (copies.empty()) return now_shared;
  DedupeRequest request;
  request.reference = reference_ref;
  request.reference_path = reference_ref.display;
  request.size = reference.size;
  for (const ImpliedCopy& copy : copies) {
    ASSIGN_OR_RETURN(SubvolInfo subvol, SubvolumeOf(copy.subvol_id));
    // Received snapshots are never destinations (incremental send keeps working); a
    // read-only mount refuses anyway. No flag is flipped for a copy: one that an older
    // kernel refuses keeps its extents.
    if ((subvol.flags.read_only && subvol.flags.received) || subvol.flags.on_read_only_mount) {
      continue;
    }
    FileRecord as = dest;
    as.subvol_id = copy.subvol_id;
    as.path = copy.path;
    request.destinations.push_back(RefOf(as));
    request.destination_paths.push_back(request.destinations.back().display);
  }
  if (request.destinations.empty()) return now_shared;
  ++result.backend_calls;
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes = backend_->Dedupe(request);
  if (!outcomes.ok()) return now_shared;  // the copies keep their extents
  for (size_t i = 0; i < outcomes->size() && i < request.destinations.size(); ++i) {
    if ((*outcomes)[i].kind != DedupeOutcome::Kind::kDeduped) continue;
    absl::StatusOr<bool> shared =
        files_->SharesAllExtents(reference_ref, request.destinations[i]);
    if (shared.ok() && *shared) {
      ++result.files_deduped;
      result.bytes_shared += dest.size;
      now_shared.push_back(InodeKey{request.destinations[i].subvol_id, dest.ino});
    }
  }
  return now_shared;
}

}  // namespace btrdupd
