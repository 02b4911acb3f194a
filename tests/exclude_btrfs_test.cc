// Excludes on a real btrfs, through the built btrdupd binary: excluded files and
// directories are never opened (inotify sees no open of them) nor indexed nor deduped,
// and changing the list takes effect at the next run (newly excluded files leave the
// index, files no longer excluded are picked up).

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/index.h"
#include "gtest/gtest.h"
#include "ioctl/fiemap.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::BtrfsTest;
using ::btrdupd::testing::CommandResult;
using ::btrdupd::testing::RunCommand;
using ::btrdupd::testing::WriteFile;
using ::btrdupd::testing::WritePatternFile;

constexpr uint64_t kSize = 128 * 1024;

class ExcludeBtrfsTest : public BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(mkdir(Path("docker").c_str(), 0755), 0);
    ASSERT_TRUE(WritePatternFile(Path("vm.qcow2"), kSize, 1).ok());
    ASSERT_TRUE(WritePatternFile(Path("copy.qcow2"), kSize, 1).ok());
    ASSERT_TRUE(WritePatternFile(Path("docker/x"), kSize, 2).ok());
    ASSERT_TRUE(WritePatternFile(Path("docker/y"), kSize, 2).ok());
    ASSERT_TRUE(WritePatternFile(Path("keep1"), kSize, 3).ok());
    ASSERT_TRUE(WritePatternFile(Path("keep2"), kSize, 3).ok());
    ASSERT_OK(SetExclude("*.qcow2, docker/**"));
    sync();
  }

  absl::Status SetExclude(const std::string& list) {
    return WriteFile(Path(".btrdupd.conf"), absl::StrCat("exclude = ", list, "\n"));
  }

  CommandResult Btrdupd() {
    absl::StatusOr<CommandResult> r = RunCommand({"daemon/btrdupd", "--no-wait", mount_path()});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : CommandResult{-1, "", ""};
  }

  bool Shared(const std::string& a, const std::string& b) {
    UniqueFd fa(open(Path(a).c_str(), O_RDONLY | O_CLOEXEC));
    UniqueFd fb(open(Path(b).c_str(), O_RDONLY | O_CLOEXEC));
    absl::StatusOr<bool> shared = SharesAllExtents(fa.get(), fb.get());
    EXPECT_TRUE(shared.ok()) << shared.status();
    return shared.ok() && *shared;
  }

  // Whether the index has a row for `name` in the root directory, or (with `dir`) in
  // that directory of the root.
  bool Indexed(const std::string& dir, const std::string& name) {
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index =
        VolumeIndex::Open(Path(".btrdupd/btrdupd.db"));
    EXPECT_TRUE(index.ok()) << index.status();
    if (!index.ok()) return false;
    int64_t dir_id = 1;  // the volume root
    if (!dir.empty()) {
      absl::StatusOr<std::vector<DirEntryRecord>> entries = (*index)->ListDir(1);
      if (!entries.ok()) return false;
      dir_id = 0;
      for (const DirEntryRecord& e : *entries) {
        if (e.is_dir && e.name == dir) dir_id = e.id;
      }
      if (dir_id == 0) return false;
    }
    absl::StatusOr<std::optional<FileRecord>> file = (*index)->FindFile(dir_id, name);
    return file.ok() && file->has_value();
  }
};

TEST_F(ExcludeBtrfsTest, ExcludedFilesAndDirectoriesAreNeverOpenedIndexedOrDeduped) {
  UniqueFd watch(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  ASSERT_GE(watch.get(), 0);
  const int root_wd = inotify_add_watch(watch.get(), mount_path().c_str(), IN_OPEN);
  const int docker_wd = inotify_add_watch(watch.get(), Path("docker").c_str(), IN_OPEN);
  ASSERT_GE(root_wd, 0);
  ASSERT_GE(docker_wd, 0);

  CommandResult r = Btrdupd();
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;

  std::set<std::string> opened_in_root;
  int docker_events = 0;
  alignas(inotify_event) char buffer[64 * 1024];
  ssize_t n;
  while ((n = read(watch.get(), buffer, sizeof(buffer))) > 0) {
    for (char* p = buffer; p < buffer + n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(p);
      if (event->wd == docker_wd) ++docker_events;
      if (event->wd == root_wd && event->len > 0) opened_in_root.insert(event->name);
      p += sizeof(inotify_event) + event->len;
    }
  }
  EXPECT_TRUE(opened_in_root.count("keep1") > 0) << "inotify saw no open at all";
  EXPECT_EQ(opened_in_root.count("vm.qcow2"), 0u);
  EXPECT_EQ(opened_in_root.count("copy.qcow2"), 0u);
  EXPECT_EQ(opened_in_root.count("docker"), 0u) << "the excluded directory was opened";
  EXPECT_EQ(docker_events, 0);

  EXPECT_TRUE(Shared("keep1", "keep2"));
  EXPECT_FALSE(Shared("vm.qcow2", "copy.qcow2"));
  EXPECT_FALSE(Shared("docker/x", "docker/y"));
  EXPECT_TRUE(Indexed("", "keep1"));
  EXPECT_FALSE(Indexed("", "vm.qcow2"));
  EXPECT_FALSE(Indexed("docker", "x"));
}

TEST_F(ExcludeBtrfsTest, ChangingTheListTakesEffectAtTheNextRun) {
  ASSERT_EQ(Btrdupd().exit_code, 0);
  ASSERT_TRUE(Indexed("", "keep1"));
  ASSERT_OK(SetExclude("keep*"));
  CommandResult r = Btrdupd();
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "full scan")) << r.stdout_text;
  EXPECT_TRUE(Shared("vm.qcow2", "copy.qcow2"));
  EXPECT_TRUE(Shared("docker/x", "docker/y"));
  EXPECT_FALSE(Indexed("", "keep1"));
  EXPECT_FALSE(Indexed("", "keep2"));
  EXPECT_TRUE(Indexed("", "vm.qcow2"));
}

TEST_F(ExcludeBtrfsTest, FilesCreatedLaterUnderAnExcludeStayOutOfAnIncrementalPass) {
  ASSERT_EQ(Btrdupd().exit_code, 0);
  ASSERT_TRUE(WritePatternFile(Path("new.qcow2"), kSize, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path("docker/z"), kSize, 3).ok());
  ASSERT_TRUE(WritePatternFile(Path("keep3"), kSize, 3).ok());
  sync();
  CommandResult r = Btrdupd();
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "incremental scan")) << r.stdout_text;
  EXPECT_TRUE(Indexed("", "keep3"));
  EXPECT_FALSE(Indexed("", "new.qcow2"));
  EXPECT_FALSE(Indexed("docker", "z"));
  EXPECT_TRUE(Shared("keep1", "keep3"));
  EXPECT_FALSE(Shared("keep1", "docker/z"));
}

}  // namespace
}  // namespace btrdupd
