#include "core/size_group_view.h"

#include <algorithm>
#include <map>
#include <utility>

namespace btrdupd {
namespace {

SizeGroupView::InodeKey KeyOf(const FileRecord& f) { return {f.subvol_id, f.ino}; }

void EraseValue(std::vector<size_t>& v, size_t i) {
  v.erase(std::remove(v.begin(), v.end(), i), v.end());
}

}  // namespace

void SizeGroupView::Reset(uint64_t size, std::vector<FileRecord> rows) {
  const uint64_t generation = generation_ + 1;
  *this = SizeGroupView();
  generation_ = generation;
  loaded_ = true;
  size_ = size;
  members_ = std::move(rows);
  std::sort(members_.begin(), members_.end(),
            [](const FileRecord& a, const FileRecord& b) { return a.id < b.id; });
  by_id_.reserve(members_.size());
  for (size_t i = 0; i < members_.size(); ++i) {
    by_id_[members_[i].id] = i;
    ++inode_rows_[KeyOf(members_[i])];
    Add(i);
  }
}

std::optional<size_t> SizeGroupView::Find(int64_t id) const {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

bool SizeGroupView::SameFile(size_t i, const FileRecord& row) const {
  const FileRecord& m = members_[i];
  return m.id == row.id && m.size == row.size && m.subvol_id == row.subvol_id &&
         m.ino == row.ino && m.path == row.path;
}

void SizeGroupView::Replace(size_t i, const FileRecord& row) {
  const FileRecord& m = members_[i];
  const bool skip_changed =
      (m.dedupe_state == DedupeState::kSkipped) != (row.dedupe_state == DedupeState::kSkipped);
  if (m.hash_state == row.hash_state && m.hash == row.hash &&
      (!skip_changed || m.hash_state == HashState::kFull)) {
    // Only its dedupe state or schedule: no lookup depends on those (a skipped kFull
    // member stays in its full group), so the groups are not recomputed.
    members_[i] = row;
    return;
  }
  Remove(i);
  members_[i] = row;
  Add(i);
}

// The hash and state lookups of member i (identity lookups are set in Reset).
void SizeGroupView::Add(size_t i) {
  const FileRecord& m = members_[i];
  if (m.hash_state != HashState::kNone) ++hashed_;
  const bool skipped = m.dedupe_state == DedupeState::kSkipped;
  if (m.hash_state == HashState::kNone && !skipped) none_ids_.insert(m.id);
  if (m.hash_state == HashState::kPrefix) {
    if (!skipped) prefix_ids_.insert(m.id);
    ++prefix_inodes_[m.hash][KeyOf(m)];
  }
  if (m.hash_state == HashState::kFull) {
    auto [it, inserted] = full_groups_.try_emplace(m.hash);
    if (inserted) new_full_hashes_.push_back(m.hash);
    it->second.insert(std::upper_bound(it->second.begin(), it->second.end(), i), i);
    groups_dirty_ = true;
  }
}

void SizeGroupView::Remove(size_t i) {
  const FileRecord& m = members_[i];
  if (m.hash_state != HashState::kNone) --hashed_;
  none_ids_.erase(m.id);
  prefix_ids_.erase(m.id);
  if (m.hash_state == HashState::kPrefix) {
    auto it = prefix_inodes_.find(m.hash);
    if (it != prefix_inodes_.end()) {
      auto inode = it->second.find(KeyOf(m));
      if (inode != it->second.end() && --inode->second == 0) it->second.erase(inode);
      if (it->second.empty()) prefix_inodes_.erase(it);
    }
  }
  if (m.hash_state == HashState::kFull) {
    auto it = full_groups_.find(m.hash);
    if (it != full_groups_.end()) {
      EraseValue(it->second, i);
      if (it->second.empty()) full_groups_.erase(it);
    }
    groups_dirty_ = true;
  }
}

std::optional<HashTask> SizeGroupView::NextHashTask(
    absl::Time now, uint64_t prefix_bytes, const absl::flat_hash_set<int64_t>& attempted,
    const absl::flat_hash_set<std::string>& full_prefixes) {
  if (inodes() < 2) return std::nullopt;
  auto hashable = [&](const FileRecord& m) {
    return IsEligible(m, now) && m.dedupe_state != DedupeState::kSkipped &&
           !attempted.contains(m.id);
  };
  for (auto it = none_ids_.lower_bound(none_cursor_); it != none_ids_.end(); ++it) {
    const size_t i = by_id_.at(*it);
    const FileRecord& m = members_[i];
    if (!hashable(m)) {
      none_cursor_ = *it + 1;
      continue;
    }
    none_cursor_ = *it;
    bool prefix = m.size > 2 * prefix_bytes;
    // A pair: the first is read whole (see NextHashTask in core/planner.h).
    if (prefix && inodes() == 2 && hashed_ == 0) prefix = false;
    return HashTask{i, prefix};
  }
  for (auto it = prefix_ids_.lower_bound(prefix_cursor_); it != prefix_ids_.end(); ++it) {
    const size_t i = by_id_.at(*it);
    const FileRecord& m = members_[i];
    const bool matched = PrefixHasOtherInode(m.hash, m) || full_prefixes.contains(m.hash) ||
                         m.size <= 2 * prefix_bytes;
    if (!hashable(m) || !matched) {
      prefix_cursor_ = *it + 1;
      continue;
    }
    prefix_cursor_ = *it;
    return HashTask{i, false};
  }
  return std::nullopt;
}

bool SizeGroupView::PrefixHasOtherInode(const std::string& prefix,
                                        const FileRecord& file) const {
  auto it = prefix_inodes_.find(prefix);
  if (it == prefix_inodes_.end()) return false;
  return it->second.size() > 1 ||
         (it->second.size() == 1 && it->second.begin()->first != KeyOf(file));
}

std::vector<std::string> SizeGroupView::TakeNewFullHashes() {
  std::vector<std::string> out;
  out.swap(new_full_hashes_);
  return out;
}

const std::vector<size_t>* SizeGroupView::FullGroup(const std::string& hash) const {
  auto it = full_groups_.find(hash);
  return it == full_groups_.end() ? nullptr : &it->second;
}

size_t SizeGroupView::OpenGroupsBegin(absl::Time now) {
  if (groups_dirty_) {
    std::map<int64_t, std::vector<size_t>> by_first_id;
    for (const auto& [hash, indices] : full_groups_) {
      std::vector<size_t> group;
      absl::flat_hash_set<InodeKey> inodes;
      for (size_t i : indices) {
        if (!IsEligible(members_[i], now)) continue;
        group.push_back(i);
        inodes.insert(KeyOf(members_[i]));
      }
      if (inodes.size() < 2) continue;
      const int64_t first = members_[group.front()].id;
      by_first_id.emplace(first, std::move(group));
    }
    groups_.clear();
    groups_.reserve(by_first_id.size());
    for (auto& [id, group] : by_first_id) groups_.push_back(std::move(group));
    groups_settled_ = 0;
    groups_dirty_ = false;
    ++groups_version_;
  }
  return groups_settled_;
}

void SizeGroupView::SettleGroup(size_t g) {
  if (g == groups_settled_ && g < groups_.size()) ++groups_settled_;
}

}  // namespace btrdupd
