// ReadAheadWindow: which files to hint to the disk before they are hashed.
//
// The engine hashes one file while the disk could already read the next ones. Before a
// file is hashed, the engine asks this window which members of the current size group,
// then of the next sizes of the pass, to hint (FileAccess::Prefetch) and how many bytes
// of each, until `window_bytes` hinted bytes are not read yet. A file is hinted for what
// its first read will take: the whole of a small file (<= 2 * prefix_bytes), the prefix
// where a prefix stage comes first (groups of more than two inodes), else the whole
// file capped at `file_bytes`. A hinted file leaves the window when it is read
// (Consumed) or when the pass moves past its size (ForgetUpTo).
//
// A value class without I/O: the engine does the index reads and the Prefetch calls.
// Thread-compatible.

#ifndef BTRDUPD_CORE_READ_AHEAD_H_
#define BTRDUPD_CORE_READ_AHEAD_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "core/index.h"

namespace btrdupd {

class ReadAheadWindow {
 public:
  // window_bytes 0 turns reading ahead off.
  ReadAheadWindow(uint64_t window_bytes, uint64_t file_bytes, uint64_t prefix_bytes)
      : window_bytes_(window_bytes), file_bytes_(file_bytes), prefix_bytes_(prefix_bytes) {}

  bool enabled() const { return window_bytes_ > 0; }
  // True while the hinted bytes not read yet fill the window.
  bool full() const { return hinted_bytes_ >= window_bytes_; }

  // A file to hint, and how many of its first bytes.
  struct Hint {
    const FileRecord* file = nullptr;  // points into the `members` given to Take()
    uint64_t bytes = 0;
  };
  // The members of one size group (ascending id: the order they are hashed in) to hint
  // now, while the window has room: eligible at `now`, without any hash, not skipped, not
  // in `attempted`, not hinted yet. Nothing for a group of fewer than two inodes. They
  // count as hinted from now on.
  std::vector<Hint> Take(const std::vector<FileRecord>& members, absl::Time now,
                         const absl::flat_hash_set<int64_t>& attempted);
  // The same for a group of `inodes` inodes kept across steps, looking only at
  // members[*cursor...] and moving the cursor past those looked at (hinted, hashed or not
  // to be hashed in this pass), so each member is looked at once per pass.
  std::vector<Hint> TakeFrom(const std::vector<FileRecord>& members, size_t inodes,
                             absl::Time now, const absl::flat_hash_set<int64_t>& attempted,
                             size_t* cursor);

  // The file is being read now: its hint leaves the window.
  void Consumed(int64_t file_id);
  // Sizes are visited in ascending order: the hints of files up to `size` will not be
  // read in this pass any more.
  void ForgetUpTo(uint64_t size);

  // Which later sizes of the pass were looked at: the pass's sizes [1, next_size()) have
  // been hinted (index 0 is the size being worked on).
  size_t next_size() const { return next_size_; }
  void SizeLookedAt() { ++next_size_; }
  // The pass moved on to its next size (the old index 0 is gone).
  void SizeDone() {
    if (next_size_ > 1) --next_size_;
  }

  // A new pass: nothing hinted.
  void Reset();

 private:
  struct Hinted {
    uint64_t size = 0;   // of the file (its size group)
    uint64_t bytes = 0;  // hinted
  };
  uint64_t window_bytes_;
  uint64_t file_bytes_;
  uint64_t prefix_bytes_;
  absl::flat_hash_map<int64_t, Hinted> hinted_;  // hinted this pass, not read yet
  uint64_t hinted_bytes_ = 0;                    // sum of hinted_
  size_t next_size_ = 1;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_READ_AHEAD_H_
