// Planner: the pure decisions of the dedupe engine, on index records only.
//
// No I/O here: which member of a size group to hash next and how, which full-hash
// groups exist, which member becomes a group's reference, and how many destinations go
// into one backend call. core/dedupe_engine.cc does the I/O around these decisions.
//
// Hard links: two records with the same (subvol_id, ino) are one inode. They are hashed
// once and never deduped with each other; "distinct members" below counts inodes.

#ifndef BTRDUPD_CORE_PLANNER_H_
#define BTRDUPD_CORE_PLANNER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "core/config.h"
#include "core/index.h"

namespace btrdupd {

inline bool SameInode(const FileRecord& a, const FileRecord& b) {
  return a.subvol_id == b.subvol_id && a.ino == b.ino;
}

inline bool IsEligible(const FileRecord& file, absl::Time now) {
  return file.next_eligible <= now;
}

// Number of distinct inodes among `members`.
size_t CountInodes(const std::vector<FileRecord>& members);

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

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_PLANNER_H_
