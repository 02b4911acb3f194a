// GroupCursor: the dedupe plan of one full-hash group, kept across the dedupe engine's
// steps within a pass, so that one batch costs its own destinations, not the whole group.
//
// A group of n identical files is deduped in about n / 50 batches (one per Step()). The
// engine (core/dedupe_engine_group.cc) builds a cursor once per pass and group: it reads
// the members' attributes (and, for a group without a reference, whether each already
// shares extents) over as many steps as EngineOptions::max_fact_reads_per_step needs
// (core/dedupe_engine_facts.cc), splits the group into partitions (NOCOW and checksummed copies
// apart, and by owner when dedupe_across_owners is off), and when a partition's turn comes
// Plan() chooses its reference and plans its inodes with the rules of core/planner.h
// (PlanReference: the remembered reference and when it gives way; PlanDestinations: one
// name per inode, hard links, refusals). Each step then takes the next planned inodes from
// a position that only moves forward; a destination is checked against its current row
// when its turn comes (it may have been deduped, skipped, invalidated since), so the plan
// never acts on a stale record.
//
// The plan is made again from the current rows only when something it rests on changed:
//  - the size group was read afresh or its full-hash groups were recomputed (a hash came
//    or went): the engine builds a new cursor (IsFor() is false);
//  - the partition's reference is no longer usable (ReferenceUsable(): it was attempted,
//    skipped, invalidated, or a whole backend call failed on it): Plan() again, which
//    picks a new reference and plans the members still needing work.
// So a pass costs O(n) planning per group plus O(n) per such event, and one batch step
// O(batch) lookups (the row updates behind it are O(log n) each, core/size_group_view.h).
//
// Positions are indices into SizeGroupView::members() of the generation the cursor was
// built for. No I/O; not thread-safe.

#ifndef BTRDUPD_CORE_GROUP_CURSOR_H_
#define BTRDUPD_CORE_GROUP_CURSOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "core/index.h"
#include "core/planner.h"

namespace btrdupd {

// One partition of a full-hash group: the members that may share extents with each other.
struct GroupPartition {
  std::vector<size_t> members;     // view indices, ascending id
  std::vector<MemberFacts> facts;  // of `members`, same order
  size_t inodes = 0;               // distinct inodes of `members` (for BatchLimit)
  // The plan, made by GroupCursor::Plan() when the partition's turn comes.
  bool planned = false;
  bool done = false;          // nothing more in this pass (e.g. after a dry-run plan)
  size_t reference = 0;       // view index
  bool remembered = false;    // the reference is recorded as the group's kReference
  std::vector<InodePlan> plan;  // view indices, in the order of each inode's first name
  size_t next = 0;            // first entry of `plan` not handed out yet
};

class GroupCursor {
 public:
  // A cursor for the group with full hash `hash` of the view's `generation` and
  // `groups_version` (SizeGroupView::generation(), groups_version()).
  GroupCursor(uint64_t generation, uint64_t groups_version, std::string hash,
              std::vector<GroupPartition> partitions)
      : generation_(generation),
        groups_version_(groups_version),
        hash_(std::move(hash)),
        partitions_(std::move(partitions)) {}

  bool IsFor(uint64_t generation, uint64_t groups_version, const std::string& hash) const {
    return generation == generation_ && groups_version == groups_version_ && hash == hash_;
  }
  const std::string& hash() const { return hash_; }

  // The partition being worked on, or nullptr when every one is done.
  GroupPartition* current() {
    return next_partition_ < partitions_.size() ? &partitions_[next_partition_] : nullptr;
  }
  void NextPartition() { ++next_partition_; }

  // `row` (a member's current record) is still one of the group's: full hash `hash()`,
  // eligible at `now`.
  bool InGroup(const FileRecord& row, absl::Time now) const;

  // The partition's reference can still be used: still in the group and not attempted
  // in this pass (what the engine gives up on, it marks attempted).
  bool ReferenceUsable(const GroupPartition& part, const std::vector<FileRecord>& rows,
                       absl::Time now, const absl::flat_hash_set<int64_t>& attempted) const;

  // Member `dest` (view index) still needs dedupe against the reference `ref_id` now.
  bool StillNeeded(size_t dest, const std::vector<FileRecord>& rows, int64_t ref_id,
                   absl::Time now, const absl::flat_hash_set<int64_t>& attempted) const;

  // Chooses the reference of `part` and plans its inodes from the current rows of its
  // members still in the group (`rows`: SizeGroupView::members()); sets part.planned,
  // part.remembered and part.next = 0, or part.done when no member can be a source.
  // `has_shared_extents(i)` (i a view index) as in PlanReference. Returns how many
  // members it looked at (a measure of work: EngineStats::members_planned).
  size_t Plan(GroupPartition& part, const std::vector<FileRecord>& rows, absl::Time now,
              const absl::flat_hash_set<int64_t>& attempted,
              const std::function<bool(size_t)>& has_shared_extents) const;

 private:
  const uint64_t generation_;
  const uint64_t groups_version_;
  const std::string hash_;
  std::vector<GroupPartition> partitions_;
  size_t next_partition_ = 0;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_GROUP_CURSOR_H_
