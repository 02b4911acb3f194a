// IndexContents: everything a VolumeIndex says about files, as a comparable value.
//
// Tests compare the index after incremental passes (or after a killed scan and a rerun)
// with the index a clean full scan builds: equal maps mean equal knowledge.

#ifndef BTRDUPD_TESTS_TESTING_INDEX_CONTENTS_H_
#define BTRDUPD_TESTS_TESTING_INDEX_CONTENTS_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "core/index.h"

namespace btrdupd {
namespace testing {

struct IndexedFile {
  uint64_t subvol_id = 0;
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;

  bool operator==(const IndexedFile& o) const {
    return subvol_id == o.subvol_id && ino == o.ino && size == o.size &&
           mtime_ns == o.mtime_ns;
  }
};

inline std::ostream& operator<<(std::ostream& os, const IndexedFile& f) {
  return os << "{subvol " << f.subvol_id << " ino " << f.ino << " size " << f.size << "}";
}

// Every tracked file by its path relative to the volume root, found by walking the
// index's directory tree from the root, with the implied copies of linked snapshots
// (VolumeIndex::ImpliedCopies) as files of their own: what the index stands for, however
// it stores it.
absl::StatusOr<std::map<std::string, IndexedFile>> IndexContents(VolumeIndex* index);

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_INDEX_CONTENTS_H_
