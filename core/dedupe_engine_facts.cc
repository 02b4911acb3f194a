// DedupeEngine, before a group is planned: the facts its plan needs - members'
// attributes, their subvolumes' flags, and (for a group without a reference yet)
// whether each already shares extents - read at most max_fact_reads_per_step per step
// (see dedupe_engine.h and core/group_cursor.h).

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/dedupe_engine.h"
#include "core/dedupe_engine_internal.h"
#include "core/planner.h"

namespace btrdupd {

using engine_internal::kTopLevelSubvolume;

absl::StatusOr<MemberFacts> DedupeEngine::FactsOf(const FileRecord& member,
                                                  const FileAttributes& attrs) {
  ASSIGN_OR_RETURN(SubvolInfo subvol, SubvolumeOf(member.subvol_id));
  MemberFacts facts;
  facts.swapfile = attrs.swapfile;
  facts.immutable = attrs.immutable;
  facts.append_only = attrs.append_only;
  facts.received_snapshot = subvol.flags.read_only && subvol.flags.received;
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

absl::StatusOr<std::optional<StepResult>> DedupeEngine::PrepareGroup(
    const std::vector<size_t>& indices) {
  const std::vector<FileRecord>& rows = group_.members();
  const std::string& hash = rows[indices.front()].hash;
  if (!preparing_.has_value() || preparing_->generation != group_.generation() ||
      preparing_->groups_version != group_.groups_version() || preparing_->hash != hash) {
    preparing_.emplace();
    preparing_->generation = group_.generation();
    preparing_->groups_version = group_.groups_version();
    preparing_->hash = hash;
    const MemberRefs members = RefsTo(rows, indices);
    stats_.members_planned += static_cast<int64_t>(indices.size());
    preparing_->has_work = GroupHasWork(members, attempted_, config_.dedupe_across_owners);
    preparing_->needs_shared = true;
    for (const FileRecord* m : members) {
      if (m->dedupe_state == DedupeState::kReference && !attempted_.contains(m->id)) {
        preparing_->needs_shared = false;  // the remembered one is kept (or gives way)
      }
    }
  }
  if (!preparing_->has_work) return std::optional<StepResult>();
  const int budget = std::max(options_.max_fact_reads_per_step, 1);
  int reads = 0;
  auto stopped = [&](absl::string_view what, size_t done) {
    StepResult result;
    result.kind = StepResult::Kind::kDedupeBatch;
    result.size = group_.size();
    result.path = AbsPath(rows[indices.front()].path);
    result.detail = absl::StrCat("preparing a group of ", indices.size(), " identical files: ",
                                 what, " of ", done, " read");
    return std::optional<StepResult>(result);
  };
  for (Preparing& p = *preparing_; p.attrs_pos < indices.size(); ++p.attrs_pos) {
    const FileRecord& m = rows[indices[p.attrs_pos]];
    if (attrs_cache_.contains(m.id)) continue;
    if (reads == budget) return stopped("attributes", p.attrs_pos);
    ++reads;
    ++stats_.members_planned;
    // A failure is left to BuildCursor, which reads it again and records it.
    absl::StatusOr<FileAttributes> attrs = files_->GetAttributes(RefOf(m));
    if (attrs.ok()) attrs_cache_[m.id] = *attrs;
  }
  if (!preparing_->needs_shared) return std::optional<StepResult>();
  for (Preparing& p = *preparing_; p.shared_pos < indices.size(); ++p.shared_pos) {
    const FileRecord& m = rows[indices[p.shared_pos]];
    if (attempted_.contains(m.id) || shared_cache_.contains(m.id)) continue;
    if (reads == budget) return stopped("extent maps", p.shared_pos);
    ++reads;
    ++stats_.members_planned;
    shared_cache_[m.id] = files_->HasSharedExtents(RefOf(m)).value_or(false);
  }
  return std::optional<StepResult>();
}

}  // namespace btrdupd
