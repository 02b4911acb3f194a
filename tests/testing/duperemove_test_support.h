// Helpers for the duperemove backend's tests: which binary to run (the real one, or
// tests/testing/duperemove_stub.sh acting as another release), the environment the stub
// reads, FIEMAP of a path, and a btrfs snapshot layout whose copies share inode
// numbers.
//
// Header-only; not thread-safe (the stub's settings are environment variables).

#ifndef BTRDUPD_TESTS_TESTING_DUPEREMOVE_TEST_SUPPORT_H_
#define BTRDUPD_TESTS_TESTING_DUPEREMOVE_TEST_SUPPORT_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "core/dedupe_backend.h"
#include "ioctl/fiemap.h"
#include "tests/testing/file_refs.h"

namespace btrdupd {
namespace testing {

// The real duperemove: $BTRDUPD_TEST_DUPEREMOVE (bench/duperemove_versions.sh sets it
// to a binary the user built), else "duperemove" from PATH (Debian's).
inline std::string RealDuperemove() {
  const char* env = std::getenv("BTRDUPD_TEST_DUPEREMOVE");
  return env != nullptr && *env != '\0' ? env : "duperemove";
}

// The stub's absolute path (a data dependency of the test).
inline std::string DuperemoveStub() {
  char cwd[4096];
  EXPECT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
  return absl::StrCat(cwd, "/tests/testing/duperemove_stub.sh");
}

// Sets the stub's environment for the life of the object; restores it afterwards.
class StubEnv {
 public:
  explicit StubEnv(std::map<std::string, std::string> vars) {
    for (const char* name : {"STUB_VERSION", "STUB_KEEPS", "STUB_ACCEPT_A", "STUB_MODE",
                             "STUB_PIDS", "STUB_LOG"}) {
      unsetenv(name);
    }
    for (const auto& [name, value] : vars) setenv(name.c_str(), value.c_str(), 1);
    names_ = vars;
  }
  ~StubEnv() {
    for (const auto& entry : names_) unsetenv(entry.first.c_str());
  }

 private:
  std::map<std::string, std::string> names_;
};

inline std::vector<Extent> ExtentsOfPath(const std::string& path) {
  sync();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  absl::StatusOr<std::vector<Extent>> extents = ReadExtents(fd);
  close(fd);
  EXPECT_TRUE(extents.ok()) << extents.status();
  return extents.ok() ? *extents : std::vector<Extent>();
}

inline bool SharedPaths(const std::string& a, const std::string& b) {
  return SharesAllExtents(ExtentsOfPath(a), ExtentsOfPath(b));
}

// A request naming files of the volume mounted at `root` by absolute path (a missing
// file gets a ref to inode 1 of the top subvolume, which the opener reports NotFound).
inline DedupeRequest RequestFor(const std::string& root, const std::string& reference,
                                const std::vector<std::string>& destinations, uint64_t size) {
  auto ref = [&](const std::string& abs) {
    const std::string rel = abs.substr(root.size() + 1);
    struct stat st;
    if (lstat(abs.c_str(), &st) != 0) {
      FileRef missing;
      missing.subvol_id = 5;
      missing.path = rel;
      missing.ino = 1;
      missing.display = abs;
      return missing;
    }
    return RefFor(root, rel);
  };
  DedupeRequest request;
  request.reference = ref(reference);
  request.reference_path = reference;
  for (const std::string& d : destinations) {
    request.destinations.push_back(ref(d));
    request.destination_paths.push_back(d);
  }
  request.size = size;
  return request;
}

inline std::vector<uint64_t> Physical(const std::string& path) {
  std::vector<uint64_t> out;
  for (const Extent& e : ExtentsOfPath(path)) out.push_back(e.physical);
  return out;
}

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_DUPEREMOVE_TEST_SUPPORT_H_
