// Planner: the pure decisions of the dedupe engine, on index records only.
//
// No I/O here: which member of a size group to hash next and how, which full-hash
// groups exist, whether a group has work, which member becomes a group's reference
// (including when a remembered reference gives way), which names are hard links, which
// destinations are refused and why, and how many destinations go into one backend call.
// core/dedupe_engine*.cc does the I/O around these decisions (attributes, FIEMAP, the
// dedupe itself) and records the outcomes; the facts it learned come in as plain structs.
//
// Hard links: two records with the same (subvol_id, ino) are one inode. They are hashed
// once and never deduped with each other; "distinct members" below counts inodes.

#ifndef BTRDUPD_CORE_PLANNER_H_
#define BTRDUPD_CORE_PLANNER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "core/config.h"
#include "core/index.h"
#include "core/skip_kind.h"

namespace btrdupd {

inline bool SameInode(const FileRecord& a, const FileRecord& b) {
  return a.subvol_id == b.subvol_id && a.ino == b.ino;
}

inline bool IsEligible(const FileRecord& file, absl::Time now) {
  return file.next_eligible <= now;
}

// A member that still needs dedupe work against the reference `ref_id`.
inline bool NeedsDedupe(const FileRecord& m, int64_t ref_id) {
  switch (m.dedupe_state) {
    case DedupeState::kPending:
    case DedupeState::kUnique:  // matched nothing before; a new copy changes that
      return true;
    case DedupeState::kDeduped:
    case DedupeState::kAlreadyShared:
      return m.reference_id != ref_id;
    case DedupeState::kReference:
      return m.id != ref_id;
    case DedupeState::kSkipped:
      return false;
  }
  return false;
}

// A group's members as pointers to rows held elsewhere (the engine's size group view,
// core/size_group_view.h), so that a huge group is planned without a copy of its rows.
using MemberRefs = std::vector<const FileRecord*>;
MemberRefs RefsTo(const std::vector<FileRecord>& rows);
MemberRefs RefsTo(const std::vector<FileRecord>& rows, const std::vector<size_t>& indices);

// Number of distinct inodes among `members`.
size_t CountInodes(const MemberRefs& members);
inline size_t CountInodes(const std::vector<FileRecord>& members) {
  return CountInodes(RefsTo(members));
}

// What to hash next in one size group.
struct HashTask {
  size_t member = 0;    // index into the members vector
  bool prefix = false;  // hash only the first prefix_bytes (HashState::kPrefix)
};

// The next member of a size group to hash, or nullopt when hashing of the group is done
// for now. Only eligible members that are not kSkipped and not in `attempted` are
// hashed, and only when the group has at least two inodes.
//  - Files of size <= 2 * prefix_bytes are hashed in full directly.
//  - Larger files without a hash get a prefix hash first, except the first of a pair (a
//    group of exactly two inodes, neither hashed): it is read whole, and the other is
//    then prefix-checked against it.
//  - A kPrefix member is hashed in full only when another inode of the group has the
//    same prefix hash, or its prefix is in `full_group_prefixes` (the prefixes of the
//    group's members that already have full hashes, which the engine knows or reads).
// Members without any hash come before kPrefix members, lowest id first.
std::optional<HashTask> NextHashTask(
    const std::vector<FileRecord>& members, absl::Time now, uint64_t prefix_bytes,
    const absl::flat_hash_set<int64_t>& attempted,
    const absl::flat_hash_set<std::string>& full_group_prefixes = {});

// True if some eligible kPrefix member (not skipped, not in `attempted`) has no other
// inode with the same prefix while the group also has kFull members: only then must the
// engine learn the full groups' prefixes (see NextHashTask).
bool NeedsFullGroupPrefixes(const std::vector<FileRecord>& members, absl::Time now,
                            const absl::flat_hash_set<int64_t>& attempted);

// Eligible kFull members grouped by hash: each group holds indices into `members`,
// ascending id, and spans at least two inodes. Groups are ordered by their first id.
std::vector<std::vector<size_t>> FullHashGroups(const std::vector<FileRecord>& members,
                                                absl::Time now);

// A candidate for the reference of a group, with the facts the choice needs.
struct ReferenceCandidate {
  int64_t id = 0;
  absl::Time first_seen;
  bool can_be_source = true;       // false for an active swap file
  bool can_be_destination = true;  // false for immutable, append-only, received snapshot
  bool has_shared_extents = false;
};

// Index of the best reference in `candidates`, or nullopt if none can be a source.
// Order of preference: can be a source; cannot be a destination (so it still shares
// with its copies); already shares extents (keeps that sharing); oldest first_seen;
// lowest id.
std::optional<size_t> ChooseReference(const std::vector<ReferenceCandidate>& candidates);

// Destinations per backend call for a group of `group_inodes` distinct files:
// dedup_batch_size when group_inodes >= large_group_threshold, else max_dedup_batch
// (at least 1 either way).
int DestinationsPerCall(size_t group_inodes, const VolumeConfig& config);

// DestinationsPerCall, and at most `max_batch_bytes` of files of `size` bytes (at least
// one file).
int BatchLimit(size_t group_inodes, uint64_t size, const VolumeConfig& config,
               uint64_t max_batch_bytes);

// --- One (size, full hash) group: reference and destinations. ---
//
// `members` is one group (ascending id); `facts[i]` is what the engine learned of
// members[i] (REQUIRES: facts.size() == members.size()); members whose id is in
// `attempted` were handled earlier in this pass and are left alone.

// True if some member of a full-hash group is not settled: pending, deduped against a
// reference that is not in the group, or one of two references that may merge
// (`across_owners`: references of different owners stay apart otherwise).
bool GroupHasWork(const MemberRefs& members, const absl::flat_hash_set<int64_t>& attempted,
                  bool across_owners);

// What the engine learned of one member, beyond its record.
struct MemberFacts {
  bool swapfile = false;           // an active swap file: never a source or destination
  bool immutable = false;          // chattr +i
  bool append_only = false;        // chattr +a
  bool received_snapshot = false;  // in a read-only received snapshot
  // Can never be a dedupe destination, so it is the best reference.
  bool NeverDestination() const { return immutable || append_only || received_snapshot; }
};

struct ReferenceChoice {
  size_t member = 0;        // index into members
  bool remembered = false;  // the member already is the group's kReference
};

// The group's reference: the remembered one (the first kReference member, not a swap
// file) - unless it could be a destination while a member that still needs dedupe
// cannot be one (e.g. a copy in a received snapshot that arrived later): it then gives
// way, so that copy is shared too. Otherwise ChooseReference over the members,
// `has_shared_extents(i)` (I/O: asked only then, once per member) saying whether
// members[i] shares extents already. nullopt when no member can be a source.
std::optional<ReferenceChoice> PlanReference(
    const MemberRefs& members, const std::vector<MemberFacts>& facts,
    const absl::flat_hash_set<int64_t>& attempted,
    const std::function<bool(size_t)>& has_shared_extents);

// What to do with one inode of the group (hard links are one inode: one name is deduped,
// the others are skipped).
struct InodePlan {
  std::vector<size_t> hard_links;  // names skipped as SkipKind::kHardLink ...
  size_t link_of = 0;              // ... being hard links of this member
  // The name to dedupe against the reference; none when the inode is the reference's
  // or one of its names is already deduped against it.
  std::optional<size_t> destination;
  // Why `destination` cannot be one: kSwapfile, kImmutable, kAppendOnly,
  // kReceivedSnapshot (attributes first).
  std::optional<SkipKind> refusal;
};

// The inodes of the group that need work against members[reference], in the order of
// their first member. A destination without a refusal is then checked (does it already
// share all extents with the reference?) and, if not, goes into a batch: the engine
// fills one batch up to BatchLimit and leaves the later destinations (and their
// refusals) to the next step; hard links are skipped regardless.
std::vector<InodePlan> PlanDestinations(const MemberRefs& members,
                                        const std::vector<MemberFacts>& facts,
                                        size_t reference,
                                        const absl::flat_hash_set<int64_t>& attempted);

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_PLANNER_H_
