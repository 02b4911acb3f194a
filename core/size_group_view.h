// SizeGroupView: one size group held in memory across the dedupe engine's steps, with
// the lookups its per-file decisions need kept up to date row by row.
//
// The engine reads a size group from the index once per pass (or again when a file
// joins or leaves it) and then applies each changed row with Replace(); every question
// below is answered from maps, so a step's work does not grow with the group and a
// group of n files costs O(n log n) in all, not n^2 (issue: huge size groups).
//
// Members keep their positions (indices) until the next Reset(). Ordered questions
// ("the next member to hash") walk per-pass cursors that only move forward: a member
// passed over because it was not eligible, or already attempted, is seen again in the
// next pass (Reset), not later in the same one.
//
// No I/O; not thread-safe.

#ifndef BTRDUPD_CORE_SIZE_GROUP_VIEW_H_
#define BTRDUPD_CORE_SIZE_GROUP_VIEW_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "core/index.h"
#include "core/planner.h"

namespace btrdupd {

class SizeGroupView {
 public:
  using InodeKey = std::pair<uint64_t, uint64_t>;  // (subvol_id, ino)

  // Takes the group's rows (any order; kept in ascending id).
  void Reset(uint64_t size, std::vector<FileRecord> rows);
  // Counts Reset() calls: lookups built over members() (core/hash_copy.h's MemberIndex)
  // stay valid while it is unchanged, Replace() keeping every member's identity.
  uint64_t generation() const { return generation_; }
  bool loaded() const { return loaded_; }
  // Forgets the group (the next Reset() gives a new generation()).
  void Unload() { loaded_ = false; }
  uint64_t size() const { return size_; }
  std::vector<FileRecord>& members() { return members_; }
  const std::vector<FileRecord>& members() const { return members_; }
  size_t inodes() const { return inode_rows_.size(); }

  // The member with this id, if any (its index).
  std::optional<size_t> Find(int64_t id) const;
  // Replaces member `i` with `row` (the same file: same id, size, subvolume, inode and
  // path; anything else is a file leaving or joining: Reset instead). O(log n).
  void Replace(size_t i, const FileRecord& row);
  // Whether `row` can replace member `i` in place (see Replace).
  bool SameFile(size_t i, const FileRecord& row) const;

  // --- Hashing (the order and rules of NextHashTask in core/planner.h) ---
  std::optional<HashTask> NextHashTask(absl::Time now, uint64_t prefix_bytes,
                                       const absl::flat_hash_set<int64_t>& attempted,
                                       const absl::flat_hash_set<std::string>& full_prefixes);
  // Another inode of the group has the prefix hash `prefix`.
  bool PrefixHasOtherInode(const std::string& prefix, const FileRecord& file) const;
  bool HasPrefixMembers() const { return !prefix_ids_.empty(); }
  // Full hashes that appeared since the last call, in order of appearance.
  std::vector<std::string> TakeNewFullHashes();
  // Members with full hash `hash` (indices, ascending id while unchanged).
  const std::vector<size_t>* FullGroup(const std::string& hash) const;

  // --- Dedupe: full-hash groups, each visited once per pass ---
  // The eligible kFull groups spanning >= 2 inodes (FullHashGroups in core/planner.h),
  // recomputed only after a hash changed; OpenGroupsBegin() is the first one not marked
  // settled in this pass (all of them again after a recomputation).
  size_t OpenGroupsBegin(absl::Time now);
  const std::vector<std::vector<size_t>>& groups() const { return groups_; }
  // Counts the recomputations of groups(): a plan made over one of them (core/
  // group_cursor.h) holds while this and generation() are unchanged.
  uint64_t groups_version() const { return groups_version_; }
  // groups()[g] needs nothing more in this pass.
  void SettleGroup(size_t g);

  // Reading ahead (core/read_ahead.h): members before this position were hinted or
  // hashed already in this pass.
  size_t& hint_cursor() { return hint_pos_; }

 private:
  void Add(size_t i);
  void Remove(size_t i);

  bool loaded_ = false;
  uint64_t size_ = 0;
  std::vector<FileRecord> members_;
  absl::flat_hash_map<int64_t, size_t> by_id_;
  absl::flat_hash_map<InodeKey, int> inode_rows_;
  uint64_t generation_ = 0;
  size_t hashed_ = 0;                  // members with any hash
  std::set<int64_t> none_ids_;         // kNone, not kSkipped
  std::set<int64_t> prefix_ids_;       // kPrefix, not kSkipped
  int64_t none_cursor_ = 0;
  int64_t prefix_cursor_ = 0;
  // prefix hash -> inodes holding it (with how many rows each)
  absl::flat_hash_map<std::string, absl::flat_hash_map<InodeKey, int>> prefix_inodes_;
  absl::flat_hash_map<std::string, std::vector<size_t>> full_groups_;
  std::vector<std::string> new_full_hashes_;
  bool groups_dirty_ = true;
  std::vector<std::vector<size_t>> groups_;
  uint64_t groups_version_ = 0;
  size_t groups_settled_ = 0;  // groups_[0, groups_settled_) need nothing this pass
  size_t hint_pos_ = 0;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_SIZE_GROUP_VIEW_H_
