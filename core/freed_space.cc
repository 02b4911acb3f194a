#include "core/freed_space.h"

#include "absl/container/flat_hash_set.h"

namespace btrdupd {

uint64_t FreedBytes(const std::vector<DedupedHolder>& deduped) {
  absl::flat_hash_set<InodeKey> holders;
  for (const DedupedHolder& h : deduped) holders.insert(h.inode);
  absl::flat_hash_set<uint64_t> counted;
  uint64_t freed = 0;
  for (const DedupedHolder& h : deduped) {
    for (const HeldExtent& e : h.extents) {
      bool free_now = !e.shared;
      if (e.shared && e.referrers.has_value()) {
        free_now = true;
        for (const InodeKey& r : *e.referrers) {
          if (!holders.contains(r)) {
            free_now = false;
            break;
          }
        }
      }
      if (free_now && counted.insert(e.bytenr).second) freed += e.disk_bytes;
    }
  }
  return freed;
}

}  // namespace btrdupd
