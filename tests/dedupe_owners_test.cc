// dedupe_across_owners on a real loopback btrfs, through the btrdupd binary: with the
// key off, identical files of two owners are deduped only among each owner's own files
// (so neither can learn from FIEMAP that the other holds a file they guessed), and a
// file whose copies all belong to others is not refused, just left alone; with the
// default, all of them share one set of extents.

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/duperemove_test_support.h"
#include "tests/testing/files.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::BtrfsTest;
using ::btrdupd::testing::CommandResult;
using ::btrdupd::testing::RunCommand;
using ::btrdupd::testing::SharedPaths;
using ::btrdupd::testing::WriteFile;
using ::btrdupd::testing::WritePatternFile;

constexpr char kBinary[] = "daemon/btrdupd";
constexpr uint64_t kSize = 200 * 1024;

class DedupeOwnersTest : public BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    // uid 1000 and 1001 hold two copies each of one file; 1002 holds one more.
    for (const auto& [dir, uid] :
         std::vector<std::pair<std::string, uid_t>>{{"u1", 1000}, {"u2", 1001}, {"u3", 1002}}) {
      ASSERT_EQ(mkdir(Path(dir).c_str(), 0755), 0);
      ASSERT_EQ(chown(Path(dir).c_str(), uid, uid), 0);
      for (const char* name : {"a", "b"}) {
        if (dir == "u3" && std::string(name) == "b") continue;
        const std::string file = Path(absl::StrCat(dir, "/", name));
        ASSERT_TRUE(WritePatternFile(file, kSize, 42).ok());
        ASSERT_EQ(chown(file.c_str(), uid, uid), 0);
      }
    }
  }

  CommandResult Run() {
    absl::StatusOr<CommandResult> r = RunCommand({kBinary, "--no-wait", mount_path()});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : CommandResult{-1, "", ""};
  }

  bool Shared(const std::string& a, const std::string& b) {
    return SharedPaths(Path(a), Path(b));
  }
};

TEST_F(DedupeOwnersTest, WithTheKeyOffOnlyFilesOfOneOwnerShareExtents) {
  ASSERT_TRUE(WriteFile(Path(".btrdupd.conf"), "dedupe_across_owners = false\n").ok());
  CommandResult r = Run();
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_TRUE(Shared("u1/a", "u1/b"));
  EXPECT_TRUE(Shared("u2/a", "u2/b"));
  EXPECT_FALSE(Shared("u1/a", "u2/a"));
  EXPECT_FALSE(Shared("u3/a", "u1/a"));
  EXPECT_FALSE(Shared("u3/a", "u2/a"));
  // Nothing is recorded as refused: u3's file simply has no copy of its owner.
  EXPECT_NE(r.stdout_text.find("skipped 0"), std::string::npos) << r.stdout_text;

}

TEST_F(DedupeOwnersTest, ByDefaultFilesOfAllOwnersShareExtents) {
  CommandResult r = Run();
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_TRUE(Shared("u1/a", "u2/b"));
  EXPECT_TRUE(Shared("u1/b", "u3/a"));
}

}  // namespace
}  // namespace btrdupd
