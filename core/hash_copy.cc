#include "core/hash_copy.h"

#include "core/file_hasher.h"
#include "core/planner.h"

namespace btrdupd {

namespace {

int HashSlot(HashState state) { return state == HashState::kFull ? 0 : 1; }

const std::vector<size_t>& NoMembers() {
  static const std::vector<size_t>* const kNone = new std::vector<size_t>();
  return *kNone;
}

}  // namespace

MemberIndex::MemberIndex(const std::vector<FileRecord>& members,
                         const PathInSubvolume& path_in_subvolume)
    : members_(&members),
      count_(members.size()),
      first_id_(members.empty() ? 0 : members.front().id),
      last_id_(members.empty() ? 0 : members.back().id) {
  for (size_t i = 0; i < members.size(); ++i) {
    by_path_[path_in_subvolume(members[i])].push_back(i);
    by_inode_[std::make_pair(members[i].subvol_id, members[i].ino)].push_back(i);
    NoteHashed(i);
  }
}

bool MemberIndex::Indexes(const std::vector<FileRecord>& members) const {
  return members_ == &members && count_ == members.size() &&
         first_id_ == (members.empty() ? 0 : members.front().id) &&
         last_id_ == (members.empty() ? 0 : members.back().id);
}

void MemberIndex::NoteHashed(size_t i) {
  const FileRecord& m = (*members_)[i];
  if (m.hash_state == HashState::kNone) return;
  const int k = HashSlot(m.hash_state);
  if (hashes_[k].insert(m.hash).second) firsts_[k].push_back(i);
}

const std::vector<size_t>& MemberIndex::SameInode(const FileRecord& file) const {
  auto it = by_inode_.find(std::make_pair(file.subvol_id, file.ino));
  return it == by_inode_.end() ? NoMembers() : it->second;
}

std::vector<size_t> MemberIndex::CopyCandidates(const FileRecord& file,
                                                const std::string& path_in_subvolume,
                                                bool with_prefixes) const {
  const std::vector<FileRecord>& members = *members_;
  std::vector<size_t> order;
  absl::flat_hash_set<size_t> listed;
  auto add = [&](size_t i, HashState wanted) {
    const FileRecord& other = members[i];
    if (btrdupd::SameInode(other, file) || other.hash_state != wanted) return;
    if (listed.insert(i).second) order.push_back(i);
  };
  const HashState kinds[] = {HashState::kFull, HashState::kPrefix};
  auto same_path = by_path_.find(path_in_subvolume);
  for (HashState wanted : kinds) {
    if (wanted == HashState::kPrefix && !with_prefixes) break;
    if (same_path == by_path_.end()) break;
    for (size_t i : same_path->second) {
      if (order.size() >= kMaxHashCopyChecks) break;
      add(i, wanted);
    }
  }
  for (HashState wanted : kinds) {
    if (wanted == HashState::kPrefix && !with_prefixes) break;
    for (size_t i : firsts_[HashSlot(wanted)]) {
      if (order.size() >= kMaxHashCopyChecks) break;
      add(i, wanted);
    }
  }
  return order;
}

std::optional<size_t> FindHashSource(FileAccess& files, const std::vector<FileRecord>& members,
                                     const std::vector<size_t>& candidates,
                                     const FileRef& file,
                                     const std::function<FileRef(const FileRecord&)>& ref_of) {
  // No hashed member to copy from (the group's first file): no FIEMAP needed.
  if (candidates.empty()) return std::nullopt;
  absl::StatusOr<bool> shared = files.HasSharedExtents(file);
  if (!shared.ok() || !*shared) return std::nullopt;
  for (size_t i : candidates) {
    const FileRecord& other = members[i];
    const FileRef other_ref = ref_of(other);
    absl::StatusOr<bool> same = files.SharesAllExtents(other_ref, file);
    if (!same.ok() || !*same) continue;
    absl::StatusOr<FileStat> other_stat = files.Stat(other_ref);
    if (!other_stat.ok() || !MatchesRecord(*other_stat, other)) continue;
    return i;
  }
  return std::nullopt;
}

}  // namespace btrdupd
