// Hash copying: a member of a size group that shares all its extents with an already
// hashed member (a snapshot of it, a reflink copy) has the same content, so it takes
// that member's hash instead of being read.
//
// MemberIndex lists one step's copy of a size group by the keys the copy needs: members
// by path inside their own subvolume (a file's snapshots keep that path), by inode (hard
// links take one hash), and the first member of each distinct full and prefix hash.
// It is built once per step, so no per-file work walks a group of thousands.
// FindHashSource then asks FileAccess (FIEMAP) which candidate really shares the file's
// extents.
//
// Thread-compatible.

#ifndef BTRDUPD_CORE_HASH_COPY_H_
#define BTRDUPD_CORE_HASH_COPY_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "core/file_access.h"
#include "core/index.h"

namespace btrdupd {

// How many differently hashed members a file is compared with (FIEMAP) before it is
// read instead.
inline constexpr size_t kMaxHashCopyChecks = 8;

class MemberIndex {
 public:
  using PathInSubvolume = std::function<std::string(const FileRecord&)>;

  MemberIndex() = default;
  // `members` is borrowed: it must stay alive (and in place) while the index is used.
  MemberIndex(const std::vector<FileRecord>& members, const PathInSubvolume& path_in_subvolume);

  // True if this index was built from `members` as they are (same vector, same length,
  // same first and last id).
  bool Indexes(const std::vector<FileRecord>& members) const;

  // Call when members[i] got a hash (it may become its hash's first member).
  void NoteHashed(size_t i);

  // The members that are the inode (subvol_id, ino): `file` and its hard links.
  const std::vector<size_t>& SameInode(const FileRecord& file) const;

  // Up to kMaxHashCopyChecks members `file` could copy a hash from, best first: those at
  // `file`'s path inside their own subvolume, then the first member of each distinct
  // hash; full hashes first, then (with `with_prefixes`) prefix hashes. Never `file`'s
  // own inode.
  std::vector<size_t> CopyCandidates(const FileRecord& file,
                                     const std::string& path_in_subvolume,
                                     bool with_prefixes) const;

 private:
  const std::vector<FileRecord>* members_ = nullptr;
  size_t count_ = 0;
  int64_t first_id_ = 0;
  int64_t last_id_ = 0;
  absl::flat_hash_map<std::string, std::vector<size_t>> by_path_;
  absl::flat_hash_map<std::pair<uint64_t, uint64_t>, std::vector<size_t>> by_inode_;
  std::vector<size_t> firsts_[2];  // first member of each hash: [0] full, [1] prefix
  absl::flat_hash_set<std::string> hashes_[2];
};

// Of `candidates` (indices into `members`), the first whose extents `file` shares all
// of and which is still the file the index recorded; nullopt when none is (FIEMAP
// trouble counts as "not shared": the file is then read). `ref_of` names a member for
// FileAccess.
std::optional<size_t> FindHashSource(FileAccess& files, const std::vector<FileRecord>& members,
                                     const std::vector<size_t>& candidates,
                                     const FileRef& file,
                                     const std::function<FileRef(const FileRecord&)>& ref_of);

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_HASH_COPY_H_
