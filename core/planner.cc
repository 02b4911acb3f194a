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

MemberRefs RefsTo(const std::vector<FileRecord>& rows) {
  MemberRefs refs;
  refs.reserve(rows.size());
  for (const FileRecord& row : rows) refs.push_back(&row);
  return refs;
}

MemberRefs RefsTo(const std::vector<FileRecord>& rows, const std::vector<size_t>& indices) {
  MemberRefs refs;
  refs.reserve(indices.size());
  for (size_t i : indices) refs.push_back(&rows[i]);
  return refs;
}

size_t CountInodes(const MemberRefs& members) {
  absl::flat_hash_set<InodeKey> inodes;
  inodes.reserve(members.size());
  for (const FileRecord* m : members) inodes.insert(KeyOf(*m));
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

int BatchLimit(size_t group_inodes, uint64_t size, const VolumeConfig& config,
               uint64_t max_batch_bytes) {
  int limit = DestinationsPerCall(group_inodes, config);
  if (size > 0) {
    const uint64_t by_bytes = std::max<uint64_t>(max_batch_bytes / size, 1);
    limit = static_cast<int>(std::min<uint64_t>(limit, by_bytes));
  }
  return limit;
}

bool GroupHasWork(const MemberRefs& members, const absl::flat_hash_set<int64_t>& attempted,
                  bool across_owners) {
  absl::flat_hash_set<int64_t> references;
  for (const FileRecord* m : members) {
    if (m->dedupe_state == DedupeState::kReference) references.insert(m->id);
  }
  for (const FileRecord* row : members) {
    const FileRecord& m = *row;
    if (attempted.contains(m.id)) continue;
    if (m.dedupe_state == DedupeState::kPending ||
        (SharesWithReference(m.dedupe_state) && !references.contains(m.reference_id)) ||
        (m.dedupe_state == DedupeState::kReference && references.size() > 1 &&
         across_owners)) {
      return true;
    }
  }
  return false;
}

std::optional<ReferenceChoice> PlanReference(
    const MemberRefs& members, const std::vector<MemberFacts>& facts,
    const absl::flat_hash_set<int64_t>& attempted,
    const std::function<bool(size_t)>& has_shared_extents) {
  std::optional<size_t> ref;
  for (size_t i = 0; i < members.size() && !ref; ++i) {
    if (members[i]->dedupe_state == DedupeState::kReference && !facts[i].swapfile &&
        !attempted.contains(members[i]->id)) {
      ref = i;
    }
  }
  if (ref && !facts[*ref].NeverDestination()) {
    // The remembered reference gives way to a copy needing work that cannot be a
    // destination.
    for (size_t i = 0; i < members.size(); ++i) {
      if (i == *ref || facts[i].swapfile || attempted.contains(members[i]->id) ||
          !NeedsDedupe(*members[i], members[*ref]->id)) {
        continue;
      }
      if (facts[i].NeverDestination()) {
        ref.reset();
        break;
      }
    }
  }
  if (ref) return ReferenceChoice{*ref, /*remembered=*/true};
  std::vector<ReferenceCandidate> candidates;
  std::vector<size_t> where;
  for (size_t i = 0; i < members.size(); ++i) {
    if (attempted.contains(members[i]->id)) continue;
    ReferenceCandidate c;
    c.id = members[i]->id;
    c.first_seen = members[i]->first_seen;
    c.can_be_source = !facts[i].swapfile;
    c.can_be_destination = !facts[i].NeverDestination();
    c.has_shared_extents = has_shared_extents(i);
    candidates.push_back(c);
    where.push_back(i);
  }
  std::optional<size_t> best = ChooseReference(candidates);
  if (!best) return std::nullopt;
  return ReferenceChoice{where[*best], /*remembered=*/false};
}

std::vector<InodePlan> PlanDestinations(const MemberRefs& members,
                                        const std::vector<MemberFacts>& facts,
                                        size_t reference,
                                        const absl::flat_hash_set<int64_t>& attempted) {
  const FileRecord& ref = *members[reference];
  // Names by inode, inodes in the order of their first name.
  absl::flat_hash_map<InodeKey, size_t> slot;
  std::vector<std::vector<size_t>> inodes;
  for (size_t i = 0; i < members.size(); ++i) {
    auto [it, inserted] = slot.emplace(KeyOf(*members[i]), inodes.size());
    if (inserted) inodes.emplace_back();
    inodes[it->second].push_back(i);
  }
  std::vector<InodePlan> plans;
  for (const std::vector<size_t>& links : inodes) {
    std::vector<size_t> pending;
    std::optional<size_t> done;
    for (size_t i : links) {
      if (i == reference) continue;
      const FileRecord& m = *members[i];
      if (SharesWithReference(m.dedupe_state) && m.reference_id == ref.id) done = i;
      if (!attempted.contains(m.id) && NeedsDedupe(m, ref.id)) pending.push_back(i);
    }
    if (pending.empty()) continue;
    InodePlan plan;
    if (SameInode(*members[links.front()], ref) || done.has_value()) {
      plan.hard_links = pending;
      plan.link_of = done.has_value() ? *done : reference;
      plans.push_back(std::move(plan));
      continue;
    }
    const size_t d = pending[0];
    plan.hard_links.assign(pending.begin() + 1, pending.end());
    plan.link_of = d;
    plan.destination = d;
    const MemberFacts& f = facts[d];
    if (f.swapfile) {
      plan.refusal = SkipKind::kSwapfile;
    } else if (f.immutable) {
      plan.refusal = SkipKind::kImmutable;
    } else if (f.append_only) {
      plan.refusal = SkipKind::kAppendOnly;
    } else if (f.received_snapshot) {
      plan.refusal = SkipKind::kReceivedSnapshot;
    }
    plans.push_back(std::move(plan));
  }
  return plans;
}

}  // namespace btrdupd
