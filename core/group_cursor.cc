#include "core/group_cursor.h"

#include <utility>
#include <vector>

namespace btrdupd {

bool GroupCursor::InGroup(const FileRecord& row, absl::Time now) const {
  return row.hash_state == HashState::kFull && row.hash == hash_ && IsEligible(row, now);
}

bool GroupCursor::ReferenceUsable(const GroupPartition& part,
                                  const std::vector<FileRecord>& rows, absl::Time now,
                                  const absl::flat_hash_set<int64_t>& attempted) const {
  // A reference given up in this pass (skipped, invalidated, failed as a whole) is
  // attempted; one whose row changed otherwise has left the group.
  const FileRecord& ref = rows[part.reference];
  return InGroup(ref, now) && !attempted.contains(ref.id);
}

bool GroupCursor::StillNeeded(size_t dest, const std::vector<FileRecord>& rows, int64_t ref_id,
                              absl::Time now,
                              const absl::flat_hash_set<int64_t>& attempted) const {
  const FileRecord& row = rows[dest];
  return InGroup(row, now) && !attempted.contains(row.id) && NeedsDedupe(row, ref_id);
}

size_t GroupCursor::Plan(GroupPartition& part, const std::vector<FileRecord>& rows,
                         absl::Time now, const absl::flat_hash_set<int64_t>& attempted,
                         const std::function<bool(size_t)>& has_shared_extents) const {
  // The planner works on the live members (pointers to the view's rows); its indices
  // map back to the view through `live`.
  std::vector<size_t> live;
  MemberRefs members;
  std::vector<MemberFacts> facts;
  for (size_t k = 0; k < part.members.size(); ++k) {
    const size_t i = part.members[k];
    if (!InGroup(rows[i], now)) continue;
    live.push_back(i);
    members.push_back(&rows[i]);
    facts.push_back(part.facts[k]);
  }
  part.planned = true;
  part.next = 0;
  part.plan.clear();
  std::optional<ReferenceChoice> choice =
      members.empty() ? std::nullopt
                      : PlanReference(members, facts, attempted,
                                      [&](size_t k) { return has_shared_extents(live[k]); });
  if (!choice.has_value()) {
    part.done = true;
    return part.members.size();
  }
  part.reference = live[choice->member];
  part.remembered = choice->remembered;
  part.plan = PlanDestinations(members, facts, choice->member, attempted);
  for (InodePlan& inode : part.plan) {
    for (size_t& i : inode.hard_links) i = live[i];
    inode.link_of = live[inode.link_of];
    if (inode.destination.has_value()) inode.destination = live[*inode.destination];
  }
  return part.members.size();
}

}  // namespace btrdupd
