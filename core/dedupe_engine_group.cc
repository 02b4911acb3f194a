// DedupeEngine, stages 2-5: one (size, hash) group - NOCOW and owner partitions,
// reference, hard links, extent check, and the choice of the next batch (see
// dedupe_engine.h), planned once per pass and group and walked batch by batch
// (core/group_cursor.h).

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/config.h"
#include "core/dedupe_engine.h"
#include "core/dedupe_engine_internal.h"
#include "core/planner.h"
#include "core/sha256.h"

namespace btrdupd {

namespace {

// Why a destination is refused (PlanDestinations), for the skip record.
absl::string_view RefusalDetail(SkipKind kind) {
  switch (kind) {
    case SkipKind::kSwapfile:
      return "active swap file: never deduped";
    case SkipKind::kImmutable:
      return "immutable (chattr +i): cannot be changed";
    case SkipKind::kAppendOnly:
      return "append-only (chattr +a): cannot be changed";
    case SkipKind::kReceivedSnapshot:
      return "read-only received snapshot: never a dedupe destination (its extents stay as "
             "received, for incremental send)";
    default:
      return SkipKindName(kind);
  }
}

}  // namespace

absl::StatusOr<std::optional<StepResult>> DedupeEngine::ProcessGroup(size_t g, absl::Time now) {
  const std::vector<size_t>& indices = group_.groups()[g];
  const std::vector<FileRecord>& rows = group_.members();
  if (!cursor_.has_value() ||
      !cursor_->IsFor(group_.generation(), group_.groups_version(), rows[indices.front()].hash)) {
    cursor_.reset();
    ASSIGN_OR_RETURN(std::optional<StepResult> preparing, PrepareGroup(indices));
    if (preparing.has_value()) return preparing;
    ASSIGN_OR_RETURN(std::optional<StepResult> built, BuildCursor(indices, now));
    if (built.has_value()) return built;
    if (!cursor_.has_value()) return std::optional<StepResult>();
  }
  for (GroupPartition* part = cursor_->current(); part != nullptr; part = cursor_->current()) {
    ASSIGN_OR_RETURN(std::optional<StepResult> done, ProcessPartition(*part, now));
    if (done.has_value()) return done;
    cursor_->NextPartition();
  }
  return std::optional<StepResult>();
}

absl::StatusOr<std::optional<StepResult>> DedupeEngine::BuildCursor(
    const std::vector<size_t>& indices, absl::Time now) {
  const std::vector<FileRecord>& rows = group_.members();
  const std::string hash = rows[indices.front()].hash;
  stats_.members_planned += static_cast<int64_t>(indices.size());
  // Whether anything in this group is not settled: PrepareGroup, just before, found out.
  if (!preparing_->has_work) {
    cursor_.emplace(group_.generation(), group_.groups_version(), hash,
                    std::vector<GroupPartition>());
    return std::optional<StepResult>();
  }

  subvol_cache_.clear();
  StepResult result;
  result.kind = StepResult::Kind::kDedupeBatch;
  result.size = group_.size();
  // View indices and attributes of the checksummed (0) and NOCOW (1) members.
  std::vector<size_t> kinds[2];
  std::vector<FileAttributes> kind_attrs[2];
  for (size_t i : indices) {
    const FileRecord& m = rows[i];
    // Attributes are read once per member while its size group is being worked on.
    absl::StatusOr<FileAttributes> attrs;
    auto cached = attrs_cache_.find(m.id);
    if (cached != attrs_cache_.end()) {
      attrs = cached->second;
    } else {
      attrs = files_->GetAttributes(RefOf(m));
      if (attrs.ok()) attrs_cache_[m.id] = *attrs;
    }
    if (!attrs.ok()) {
      result.path = AbsPath(m.path);
      if (IsTreeChanged(attrs.status())) {
        RETURN_IF_ERROR(BackToScanner(m, attrs.status(), result));
      } else if (absl::IsNotFound(attrs.status())) {
        RETURN_IF_ERROR(RemoveVanished(m, result));
      } else {
        RETURN_IF_ERROR(Skip(
            m, SkipKindOfError(attrs.status(), SkipKind::kUnreadable),
            absl::StrCat("cannot read attributes: ", attrs.status().message()), result));
      }
      return std::optional<StepResult>(result);
    }
    kinds[attrs->nocow ? 1 : 0].push_back(i);
    kind_attrs[attrs->nocow ? 1 : 0].push_back(*attrs);
  }
  std::vector<GroupPartition> partitions;
  for (int part = 0; part < 2; ++part) {
    const std::vector<size_t>& kind = kinds[part];
    if (kind.empty()) continue;
    const MemberRefs kind_rows = RefsTo(rows, kind);
    if (CountInodes(kind_rows) < 2) {
      // The only copy of its kind: NOCOW and checksummed files cannot share extents.
      for (const FileRecord* row : kind_rows) {
        const FileRecord& m = *row;
        if (attempted_.contains(m.id) || m.dedupe_state != DedupeState::kPending) continue;
        result.path = AbsPath(m.path);
        RETURN_IF_ERROR(Skip(m, SkipKind::kNodatasumMismatch,
                             part == 1 ? "NOCOW (chattr +C): cannot share extents with its "
                                         "checksummed copies"
                                       : "checksummed: its copies are NOCOW (chattr +C) and "
                                         "cannot share extents with it",
                             result));
      }
      if (result.files_skipped > 0) return std::optional<StepResult>(result);
      continue;
    }
    // With dedupe_across_owners off, each owner's copies are a partition of their own.
    std::map<uint32_t, GroupPartition> owners;
    for (size_t k = 0; k < kind.size(); ++k) {
      const uint32_t owner = config_.dedupe_across_owners ? 0 : kind_attrs[part][k].owner;
      GroupPartition& p = owners[owner];
      p.members.push_back(kind[k]);
      ASSIGN_OR_RETURN(MemberFacts facts, FactsOf(rows[kind[k]], kind_attrs[part][k]));
      p.facts.push_back(facts);
    }
    for (auto& [owner, p] : owners) {
      const MemberRefs owner_rows = RefsTo(rows, p.members);
      p.inodes = CountInodes(owner_rows);
      if (p.inodes < 2) {
        // Its copies all belong to other owners: nothing it may share with, until a copy
        // of its own owner appears (kUnique: a new copy brings it back).
        if (options_.dry_run) continue;
        for (const FileRecord* m : owner_rows) {
          if (m->dedupe_state == DedupeState::kPending && !attempted_.contains(m->id)) {
            attempted_.insert(m->id);
            RETURN_IF_ERROR(index_->SetDedupeState(m->id, DedupeState::kUnique, 0));
          }
        }
        continue;
      }
      partitions.push_back(std::move(p));
    }
  }
  cursor_.emplace(group_.generation(), group_.groups_version(), hash, std::move(partitions));
  return std::optional<StepResult>();
}

absl::StatusOr<std::optional<StepResult>> DedupeEngine::ProcessPartition(GroupPartition& part,
                                                                         absl::Time now) {
  const std::vector<FileRecord>& rows = group_.members();
  StepResult result;
  result.kind = StepResult::Kind::kDedupeBatch;
  result.size = group_.size();
  if (part.done) return std::optional<StepResult>();
  subvol_cache_.clear();  // subvolume flags are asked afresh for each batch
  if (!part.planned || !cursor_->ReferenceUsable(part, rows, now, attempted_)) {
    stats_.members_planned += static_cast<int64_t>(
        cursor_->Plan(part, rows, now, attempted_, [&](size_t i) {
          // Read before the plan (PrepareGroup) when the group had no reference.
          auto known = shared_cache_.find(rows[i].id);
          if (known != shared_cache_.end()) return known->second;
          return files_->HasSharedExtents(RefOf(rows[i])).value_or(false);
        }));
    if (part.done) return std::optional<StepResult>();
    // Hard links are skipped regardless of batches, all at once.
    for (const InodePlan& inode : part.plan) {
      for (size_t i : inode.hard_links) {
        if (attempted_.contains(rows[i].id)) continue;
        RETURN_IF_ERROR(Skip(rows[i], SkipKind::kHardLink,
                             absl::StrCat("hard link of ", AbsPath(rows[inode.link_of].path),
                                          ": one inode, nothing to share"),
                             result));
      }
    }
  } else if (part.next >= part.plan.size()) {
    return std::optional<StepResult>();  // every planned inode handed out
  }
  const bool remembered = part.remembered;
  // A copy: Skip() and the outcomes below do not change the view until the next step,
  // but the reference must not move under the loop either way.
  const FileRecord reference = rows[part.reference];
  const std::string ref_path = AbsPath(reference.path);
  result.path = ref_path;
  const FileRef ref_file = RefOf(reference);
  absl::StatusOr<FileStat> ref_stat = files_->Stat(ref_file);
  if (!ref_stat.ok() && absl::IsNotFound(ref_stat.status())) {
    RETURN_IF_ERROR(RemoveVanished(reference, result));
    return std::optional<StepResult>(result);
  }
  if (!ref_stat.ok() && IsTreeChanged(ref_stat.status())) {
    RETURN_IF_ERROR(BackToScanner(reference, ref_stat.status(), result));
    result.kind = StepResult::Kind::kDedupeBatch;
    return std::optional<StepResult>(result);
  }
  if (!ref_stat.ok() || !MatchesRecord(*ref_stat, reference)) {
    RETURN_IF_ERROR(Changed(reference, result));
    result.kind = StepResult::Kind::kDedupeBatch;
    return std::optional<StepResult>(result);
  }
  if (!remembered && !options_.dry_run) {
    RETURN_IF_ERROR(index_->SetDedupeState(reference.id, DedupeState::kReference, 0));
    part.remembered = true;
  }

  // --- Destinations: the next planned inodes, each checked, then one batch. ---
  const int limit = BatchLimit(part.inodes, group_.size(), config_, options_.max_batch_bytes);
  // Inodes looked at in one step, beyond the batch: those found already sharing or
  // refused cost a lookup each, so a group of 100 000 already shared copies is also
  // gone through in bounded steps.
  const int max_looked = std::max(4 * limit, 256);
  int looked = 0;
  std::vector<size_t> todo;
  while (part.next < part.plan.size()) {
    if (!options_.dry_run &&
        (static_cast<int>(todo.size()) >= limit || looked >= max_looked)) {
      break;
    }
    const InodePlan& inode = part.plan[part.next++];
    ++looked;
    ++stats_.members_planned;
    if (!inode.destination.has_value()) continue;
    const size_t d = *inode.destination;
    // The plan was made steps ago: the row may have been handled since.
    if (!cursor_->StillNeeded(d, rows, reference.id, now, attempted_)) continue;
    const FileRecord& dest = rows[d];
    if (inode.refusal.has_value()) {
      RETURN_IF_ERROR(Skip(dest, *inode.refusal, RefusalDetail(*inode.refusal), result));
      continue;
    }
    absl::StatusOr<bool> shared = files_->SharesAllExtents(ref_file, RefOf(dest));
    if (!shared.ok() && absl::IsNotFound(shared.status())) {
      RETURN_IF_ERROR(RemoveVanished(dest, result));
      continue;
    }
    if (!shared.ok() && IsTreeChanged(shared.status())) {
      // Either of the two is not the indexed file any more: the destination waits again;
      // a reference that moved is found by its own Stat() at the next batch.
      RETURN_IF_ERROR(BackToScanner(dest, shared.status(), result));
      continue;
    }
    if (shared.ok() && *shared) {
      attempted_.insert(dest.id);
      ++result.files_already_shared;
      if (!options_.dry_run) {
        RETURN_IF_ERROR(index_->RecordSharing(dest.id, DedupeState::kAlreadyShared,
                                              reference.id, clock_->Now()));
      }
      continue;
    }
    todo.push_back(d);
  }

  if (options_.dry_run) {
    for (size_t i : part.members) attempted_.insert(rows[i].id);
    part.done = true;
    if (todo.empty()) {
      if (result.files_already_shared + result.files_skipped + result.files_removed == 0) {
        return std::optional<StepResult>();
      }
      return std::optional<StepResult>(result);
    }
    PlannedGroup plan;
    plan.size = group_.size();
    plan.hash_hex = ToHex(cursor_->hash());
    plan.reference_path = ref_path;
    for (size_t d : todo) plan.destination_paths.push_back(AbsPath(rows[d].path));
    plan.already_shared = result.files_already_shared;
    plan.not_dedupable = result.files_skipped;
    plan.bytes_saveable = group_.size() * todo.size();
    result.kind = StepResult::Kind::kPlannedGroup;
    result.groups_planned = 1;
    result.files_planned = static_cast<int64_t>(plan.destination_paths.size());
    result.bytes_saveable = plan.bytes_saveable;
    result.planned = std::move(plan);
    return std::optional<StepResult>(result);
  }
  if (todo.empty()) {
    if (result.files_already_shared + result.files_skipped + result.files_removed == 0 &&
        remembered) {
      return std::optional<StepResult>();
    }
    return std::optional<StepResult>(result);
  }
  std::vector<const FileRecord*> batch;
  for (size_t d : todo) batch.push_back(&rows[d]);
  RETURN_IF_ERROR(DedupeBatch(reference, batch, /*flip_subvol=*/0, result));
  if (result.files_retry_later > 0 &&
      result.files_deduped + result.files_already_shared + result.files_skipped +
              result.files_changed + result.files_removed ==
          0) {
    // Nothing changed (every destination was busy): not progress, so a caller that
    // starts another pass after a pass with progress does not spin on a busy file.
    result.kind = StepResult::Kind::kBusy;
    if (result.detail.empty()) result.detail = "every destination busy; retried next pass";
  }
  return std::optional<StepResult>(result);
}

}  // namespace btrdupd
