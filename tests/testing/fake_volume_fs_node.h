// FakeVolumeFs's tree node, shared by its set-up (fake_volume_fs.cc) and its VolumeFs
// answers (fake_volume_fs_answers.cc). Test-only; internal to the fake.

#ifndef BTRDUPD_TESTS_TESTING_FAKE_VOLUME_FS_NODE_H_
#define BTRDUPD_TESTS_TESTING_FAKE_VOLUME_FS_NODE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/volume_fs.h"
#include "tests/testing/fake_volume_fs.h"

namespace btrdupd {
namespace testing {

struct FakeVolumeFs::Node {
  EntryType type = EntryType::kDirectory;
  uint64_t ino = 0;
  uint64_t dev = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t transid = 0;
  std::map<std::string, std::shared_ptr<Node>> children;
};

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_FAKE_VOLUME_FS_NODE_H_
