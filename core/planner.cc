#include "core/planner.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace btrdupd {
namespace {

using InodeKey = std::pair<uint64_t, uint64_t>;

InodeKey KeyOf(const FileRecord& file) { return {file.subvol_id, file.ino}; }

bool Hashable(const FileRecord& file, absl::Time now,
              const absl::flat_hash_set<int64_t>& attempted) {
  return IsEligible(file, now) && file.dedupe_state != DedupeState::kSkipped &&
         !attempted.contains(file.id);
}

// Which prefix hashes are shared by at least two inodes (one pass over the group).
class PrefixTwins {
 public:
  explicit PrefixTwins(const std::vector<FileRecord>& members) {
    for (const FileRecord& m : members) {
      if (m.hash_state != HashState::kPrefix) continue;
      auto [it, inserted] = first_.emplace(m.hash, KeyOf(m));
      if (!inserted && it->second != KeyOf(m)) twins_.insert(m.hash);
    }
  }
  bool HasTwin(const FileRecord& m) const { return twins_.contains(m.hash); }

 private:
  absl::flat_hash_map<std::string, InodeKey> first_;
  absl::flat_hash_set<std::string> twins_;
};

}  // namespace

size_t CountInodes(const std::vector<FileRecord>& members) {
  absl::flat_hash_set<InodeKey> inodes;
  inodes.reserve(members.size());
  for (const FileRecord& m : members) inodes.insert(KeyOf(m));
  return inodes.size();
}

bool NeedsFullGroupPrefixes(const std::vector<FileRecord>& members, absl::Time now,
                            const absl::flat_hash_set<int64_t>& attempted) {
  bool any_full = false;
  for (const FileRecord& m : members) any_full |= m.hash_state == HashState::kFull;
  if (!any_full) return false;
  const PrefixTwins twins(members);
  for (const FileRecord& m : members) {
    if (m.hash_state == HashState::kPrefix && Hashable(m, now, attempted) && !twins.HasTwin(m)) {
      return true;
    }
  }
  return false;
}

std::optional<HashTask> NextHashTask(const std::vector<FileRecord>& members, absl::Time now,
                                     uint64_t prefix_bytes,
                                     const absl::flat_hash_set<int64_t>& attempted,
                                     const absl::flat_hash_set<std::string>& full_group_prefixes) {
  const size_t inodes = CountInodes(members);
  if (inodes < 2) return std::nullopt;
  const PrefixTwins twins(members);
  std::optional<size_t> best_none;
  std::optional<size_t> best_prefix;
  for (size_t i = 0; i < members.size(); ++i) {
    const FileRecord& m = members[i];
    if (!Hashable(m, now, attempted)) continue;
    if (m.hash_state == HashState::kNone) {
      if (!best_none || m.id < members[*best_none].id) best_none = i;
    } else if (m.hash_state == HashState::kPrefix) {
      const bool matched = twins.HasTwin(m) || full_group_prefixes.contains(m.hash);
      // Files small enough to skip the prefix stage are read whole anyway.
      if (matched || m.size <= 2 * prefix_bytes) {
        if (!best_prefix || m.id < members[*best_prefix].id) best_prefix = i;
      }
    }
  }
  if (best_none) {
    const FileRecord& m = members[*best_none];
    bool prefix = m.size > 2 * prefix_bytes;
    if (prefix && inodes == 2) {
      // A pair: read the first one whole (its prefix is learnt on the way); the other is
      // then checked by prefix against it and read on only if that matches. An identical
      // pair costs no extra read; a differing one costs one prefix.
      bool any_hash = false;
      for (const FileRecord& other : members) any_hash |= other.hash_state != HashState::kNone;
      if (!any_hash) prefix = false;
    }
    return HashTask{*best_none, prefix};
  }
  if (best_prefix) return HashTask{*best_prefix, false};
  return std::nullopt;
}

std::vector<std::vector<size_t>> FullHashGroups(const std::vector<FileRecord>& members,
                                                absl::Time now) {
  std::vector<size_t> order;
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i].hash_state == HashState::kFull && IsEligible(members[i], now)) {
      order.push_back(i);
    }
  }
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return members[a].id < members[b].id; });
  std::map<std::string, size_t> slot;  // hash -> index in groups
  std::vector<std::vector<size_t>> groups;
  for (size_t i : order) {
    auto [it, inserted] = slot.emplace(members[i].hash, groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  std::vector<std::vector<size_t>> result;
  for (auto& group : groups) {
    absl::flat_hash_set<InodeKey> inodes;
    for (size_t i : group) inodes.insert(KeyOf(members[i]));
    if (inodes.size() >= 2) result.push_back(std::move(group));
  }
  return result;
}

std::optional<size_t> ChooseReference(const std::vector<ReferenceCandidate>& candidates) {
  std::optional<size_t> best;
  auto rank = [](const ReferenceCandidate& c) {
    // Larger is better.
    return std::make_tuple(!c.can_be_destination, c.has_shared_extents);
  };
  for (size_t i = 0; i < candidates.size(); ++i) {
    const ReferenceCandidate& c = candidates[i];
    if (!c.can_be_source) continue;
    if (!best) {
      best = i;
      continue;
    }
    const ReferenceCandidate& b = candidates[*best];
    auto rc = rank(c);
    auto rb = rank(b);
    if (rc != rb) {
      if (rc > rb) best = i;  // prefers "cannot be a destination", then "shared"
      continue;
    }
    if (c.first_seen != b.first_seen) {
      if (c.first_seen < b.first_seen) best = i;
      continue;
    }
    if (c.id < b.id) best = i;
  }
  return best;
}

int DestinationsPerCall(size_t group_inodes, const VolumeConfig& config) {
  int limit = group_inodes >= static_cast<size_t>(std::max(config.large_group_threshold, 1))
                  ? config.dedup_batch_size
                  : config.max_dedup_batch;
  return std::max(limit, 1);
}

}  // namespace btrdupd
