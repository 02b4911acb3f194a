#include "core/read_ahead.h"

#include <algorithm>

#include "core/planner.h"

namespace btrdupd {

std::vector<ReadAheadWindow::Hint> ReadAheadWindow::Take(
    const std::vector<FileRecord>& members, absl::Time now,
    const absl::flat_hash_set<int64_t>& attempted) {
  if (members.empty()) return {};
  size_t from = 0;
  return TakeFrom(members, CountInodes(members), now, attempted, &from);
}

std::vector<ReadAheadWindow::Hint> ReadAheadWindow::TakeFrom(
    const std::vector<FileRecord>& members, size_t inodes, absl::Time now,
    const absl::flat_hash_set<int64_t>& attempted, size_t* cursor) {
  std::vector<Hint> hints;
  if (inodes < 2) return hints;
  for (; *cursor < members.size(); ++*cursor) {
    if (full()) break;
    const FileRecord& m = members[*cursor];
    if (m.hash_state != HashState::kNone || m.dedupe_state == DedupeState::kSkipped ||
        !IsEligible(m, now) || attempted.contains(m.id) || hinted_.contains(m.id)) {
      continue;
    }
    // What the first read of it will take (see NextHashTask in core/planner.h).
    const uint64_t bytes = m.size <= 2 * prefix_bytes_ ? m.size
                           : inodes > 2                ? prefix_bytes_
                                                       : std::min(m.size, file_bytes_);
    hints.push_back(Hint{&m, bytes});
    hinted_[m.id] = Hinted{m.size, bytes};
    hinted_bytes_ += bytes;
  }
  return hints;
}

void ReadAheadWindow::Consumed(int64_t file_id) {
  auto it = hinted_.find(file_id);
  if (it == hinted_.end()) return;
  hinted_bytes_ -= it->second.bytes;
  hinted_.erase(it);
}

void ReadAheadWindow::ForgetUpTo(uint64_t size) {
  for (auto it = hinted_.begin(); it != hinted_.end();) {
    if (it->second.size <= size) {
      hinted_bytes_ -= it->second.bytes;
      hinted_.erase(it++);
    } else {
      ++it;
    }
  }
}

void ReadAheadWindow::Reset() {
  hinted_.clear();
  hinted_bytes_ = 0;
  next_size_ = 1;
}

}  // namespace btrdupd
