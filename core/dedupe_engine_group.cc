// DedupeEngine, stages 2-5: one (size, hash) group - NOCOW partitions, reference, hard
// links, extent check, and the choice of the next batch (see dedupe_engine.h).

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

using engine_internal::kTopLevelSubvolume;

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

absl::StatusOr<std::vector<MemberFacts>> DedupeEngine::FactsOf(
    const std::vector<FileRecord>& members, const std::vector<FileAttributes>& attrs) {
  std::vector<MemberFacts> facts(members.size());
  for (size_t i = 0; i < members.size(); ++i) {
    ASSIGN_OR_RETURN(SubvolInfo subvol, SubvolumeOf(members[i].subvol_id));
    facts[i].swapfile = attrs[i].swapfile;
    facts[i].immutable = attrs[i].immutable;
    facts[i].append_only = attrs[i].append_only;
    facts[i].received_snapshot = subvol.flags.read_only && subvol.flags.received;
  }
  return facts;
}

absl::StatusOr<DedupeEngine::SubvolInfo> DedupeEngine::SubvolumeOf(uint64_t subvol_id) {
  auto cached = subvol_cache_.find(subvol_id);
  if (cached != subvol_cache_.end()) return cached->second;
  SubvolInfo info;
  info.id = subvol_id;
  const SubvolumeRecord* record = nullptr;
  for (int attempt = 0; attempt < 2 && record == nullptr; ++attempt) {
    for (const SubvolumeRecord& s : subvolumes_) {
      if (s.id == subvol_id) record = &s;
    }
    if (record == nullptr && attempt == 0) {
      ASSIGN_OR_RETURN(std::vector<SubvolumeRecord> subvolumes, index_->ListSubvolumes());
      SetSubvolumes(std::move(subvolumes));
    }
  }
  if (record != nullptr && subvol_id != kTopLevelSubvolume) {
    info.relative_path = record->path;
    absl::StatusOr<SubvolumeFlags> flags =
        files_->GetSubvolumeFlags(SubvolRefOf(subvol_id, record->path));
    if (flags.ok()) {
      info.flags = *flags;
    } else {
      // Fall back to what the scanner saw; the kernel still refuses what it must.
      info.flags.read_only = record->read_only;
      info.flags.received = !record->received_uuid.empty();
    }
  }
  subvol_cache_[subvol_id] = info;
  return info;
}

absl::StatusOr<std::optional<StepResult>> DedupeEngine::ProcessGroup(Group& group,
                                                                    absl::Time now) {
  // Cheap test first (no I/O): is anything in this group not settled?
  if (!GroupHasWork(group.members, attempted_, config_.dedupe_across_owners)) {
    return std::optional<StepResult>();
  }

  subvol_cache_.clear();
  StepResult result;
  result.kind = StepResult::Kind::kDedupeBatch;
  result.size = group.size;
  std::vector<FileRecord> cow;
  std::vector<FileRecord> nocow;
  std::vector<FileAttributes> cow_attrs;
  std::vector<FileAttributes> nocow_attrs;
  for (const FileRecord& m : group.members) {
    // Attributes are read once per member while its size group is being worked on (a
    // group of thousands is deduped in many steps).
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
    (attrs->nocow ? nocow : cow).push_back(m);
    (attrs->nocow ? nocow_attrs : cow_attrs).push_back(*attrs);
  }
  for (int part = 0; part < 2; ++part) {
    std::vector<FileRecord>& kind = part == 0 ? cow : nocow;
    std::vector<FileAttributes>& kind_attrs = part == 0 ? cow_attrs : nocow_attrs;
    if (kind.empty()) continue;
    if (CountInodes(kind) < 2) {
      // The only copy of its kind: NOCOW and checksummed files cannot share extents.
      for (const FileRecord& m : kind) {
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
    // With dedupe_across_owners off, each owner's copies are a group of their own.
    std::map<uint32_t, std::pair<std::vector<FileRecord>, std::vector<FileAttributes>>> owners;
    for (size_t i = 0; i < kind.size(); ++i) {
      const uint32_t owner = config_.dedupe_across_owners ? 0 : kind_attrs[i].owner;
      owners[owner].first.push_back(kind[i]);
      owners[owner].second.push_back(kind_attrs[i]);
    }
    for (auto& [owner, part_members] : owners) {
      const std::vector<FileRecord>& members = part_members.first;
      if (CountInodes(members) < 2) {
        // Its copies all belong to other owners: nothing it may share with, until a copy
        // of its own owner appears (kUnique: a new copy brings it back).
        if (options_.dry_run) continue;
        for (const FileRecord& m : members) {
          if (m.dedupe_state == DedupeState::kPending && !attempted_.contains(m.id)) {
            attempted_.insert(m.id);
            RETURN_IF_ERROR(index_->SetDedupeState(m.id, DedupeState::kUnique, 0));
          }
        }
        continue;
      }
      ASSIGN_OR_RETURN(std::optional<StepResult> done,
                       ProcessPartition(group, members, part_members.second, now));
      if (done.has_value()) return done;
    }
  }
  return std::optional<StepResult>();
}

absl::StatusOr<std::optional<StepResult>> DedupeEngine::ProcessPartition(
    const Group& group, const std::vector<FileRecord>& members,
    const std::vector<FileAttributes>& attrs, absl::Time now) {
  StepResult result;
  result.kind = StepResult::Kind::kDedupeBatch;
  result.size = group.size;

  ASSIGN_OR_RETURN(std::vector<MemberFacts> facts, FactsOf(members, attrs));
  std::optional<ReferenceChoice> choice =
      PlanReference(members, facts, attempted_, [&](size_t i) {
        return files_->HasSharedExtents(RefOf(members[i])).value_or(false);
      });
  if (!choice) return std::optional<StepResult>();
  const bool remembered = choice->remembered;
  const FileRecord& reference = members[choice->member];
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
    RETURN_IF_ERROR(
        index_->SetDedupeState(reference.id, DedupeState::kReference, 0));
  }

  // --- Destinations: one per inode, checked, then one batch. ---
  const int limit =
      BatchLimit(CountInodes(members), group.size, config_, options_.max_batch_bytes);
  std::vector<size_t> todo;
  for (const InodePlan& inode : PlanDestinations(members, facts, choice->member, attempted_)) {
    for (size_t i : inode.hard_links) {
      RETURN_IF_ERROR(Skip(members[i], SkipKind::kHardLink,
                           absl::StrCat("hard link of ", AbsPath(members[inode.link_of].path),
                                        ": one inode, nothing to share"),
                           result));
    }
    if (!inode.destination.has_value()) continue;
    if (!options_.dry_run && static_cast<int>(todo.size()) >= limit) continue;
    const size_t d = *inode.destination;
    const FileRecord& dest = members[d];
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
    for (const FileRecord& m : members) attempted_.insert(m.id);
    if (todo.empty()) {
      if (result.files_already_shared + result.files_skipped + result.files_removed == 0) {
        return std::optional<StepResult>();
      }
      return std::optional<StepResult>(result);
    }
    PlannedGroup plan;
    plan.size = group.size;
    plan.hash_hex = ToHex(group.hash);
    plan.reference_path = ref_path;
    for (size_t d : todo) plan.destination_paths.push_back(AbsPath(members[d].path));
    plan.already_shared = result.files_already_shared;
    plan.not_dedupable = result.files_skipped;
    plan.bytes_saveable = group.size * todo.size();
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
  for (size_t d : todo) batch.push_back(&members[d]);
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
