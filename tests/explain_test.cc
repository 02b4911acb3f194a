// `btrdupd --explain` end to end: the built binary, on a fresh loopback btrfs after a
// one-shot run, says for each file why it is (not) deduped, and refuses unknown paths,
// paths on no managed volume and unreadable databases with one line and exit code 3.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::BtrfsTest;
using ::btrdupd::testing::CommandResult;
using ::btrdupd::testing::RunCommand;
using ::btrdupd::testing::RunShell;
using ::btrdupd::testing::RunShellChecked;
using ::btrdupd::testing::WriteFile;
using ::btrdupd::testing::WritePatternFile;

constexpr char kBinary[] = "daemon/btrdupd";
constexpr uint64_t kSize = 64 * 1024;

// Runs a shell command when it goes out of scope (undoing a chattr or a mount).
class Cleanup {
 public:
  explicit Cleanup(std::string command) : command_(std::move(command)) {}
  ~Cleanup() { (void)RunShell(command_); }

 private:
  std::string command_;
};

class ExplainTest : public BtrfsTest {
 protected:
  CommandResult Btrdupd(std::vector<std::string> args) {
    args.insert(args.begin(), kBinary);
    absl::StatusOr<CommandResult> result = RunCommand(args);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : CommandResult{-1, "", ""};
  }

  // --explain --json of one file (relative to the volume), which must succeed.
  std::string Json(const std::string& name) {
    CommandResult r = Btrdupd({"--explain", "--json", Path(name)});
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.stderr_text;
    return r.stdout_text;
  }
};

TEST_F(ExplainTest, SaysForEachFileWhyItIsOrIsNotDeduped) {
  ASSERT_TRUE(WriteFile(Path(".btrdupd.conf"), "[DEFAULT]\nexclude = *.skip\n").ok());
  ASSERT_EQ(mkdir(Path("dir").c_str(), 0755), 0);
  ASSERT_TRUE(WritePatternFile(Path("dir/a"), kSize, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path("dir/b"), kSize, 1).ok());
  // Same size and first block as a, different end: fully hashed, no partner.
  std::string differs = std::string(kSize - 1, '\0');
  {
    absl::StatusOr<std::string> a = ::btrdupd::testing::ReadFile(Path("dir/a"));
    ASSERT_TRUE(a.ok());
    differs = a->substr(0, kSize - 1) + std::string(1, static_cast<char>((*a)[kSize - 1] ^ 1));
  }
  ASSERT_TRUE(WriteFile(Path("dir/differs"), differs).ok());
  ASSERT_TRUE(WritePatternFile(Path("lone"), kSize + 1, 2).ok());
  ASSERT_TRUE(WritePatternFile(Path("tiny"), 100, 3).ok());
  ASSERT_TRUE(WritePatternFile(Path("x.skip"), kSize, 1).ok());
  // Same size (past the prefix stage), different start: one is hashed no further.
  ASSERT_TRUE(WritePatternFile(Path("p1"), 200 * 1024, 6).ok());
  ASSERT_TRUE(WritePatternFile(Path("p2"), 200 * 1024, 7).ok());
  // Identical and both immutable: the one that would be deduped is skipped.
  ASSERT_TRUE(WritePatternFile(Path("i1"), kSize + 4, 8).ok());
  ASSERT_TRUE(WritePatternFile(Path("i2"), kSize + 4, 8).ok());
  ASSERT_TRUE(RunShellChecked(absl::StrCat("chattr +i '", Path("i1"), "' '", Path("i2"), "'")).ok());
  Cleanup mutable_again(absl::StrCat("chattr -i '", Path("i1"), "' '", Path("i2"), "'"));
  sync();
  CommandResult run = Btrdupd({"--no-wait", mount_path()});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  // Seen by a run without --no-wait: tracked, still in its stability wait.
  ASSERT_TRUE(WritePatternFile(Path("late"), kSize + 2, 4).ok());
  ASSERT_TRUE(WritePatternFile(Path("late2"), kSize + 2, 10).ok());
  sync();
  ASSERT_EQ(Btrdupd({mount_path()}).exit_code, 0);
  // Written after the last run.
  ASSERT_TRUE(WritePatternFile(Path("new"), kSize, 5).ok());
  // Changed after the last pass recorded it.
  ASSERT_TRUE(WritePatternFile(Path("dir/differs"), kSize + 9, 9).ok());
  // Another mount below the volume (a bind mount of dir made after the runs).
  ASSERT_EQ(mkdir(Path("bound").c_str(), 0755), 0);
  ASSERT_TRUE(RunShellChecked(absl::StrCat("mount --bind '", Path("dir"), "' '", Path("bound"), "'")).ok());
  Cleanup unbind(absl::StrCat("umount '", Path("bound"), "'"));

  const std::string a = Json("dir/a");
  const std::string b = Json("dir/b");
  // One of a and b is the reference, the other deduped against it.
  const bool a_ref = absl::StrContains(a, R"("dedupe_state":"reference")");
  const std::string& ref = a_ref ? a : b;
  const std::string& deduped = a_ref ? b : a;
  EXPECT_TRUE(absl::StrContains(ref, R"("dedupe_state":"reference")")) << ref;
  EXPECT_TRUE(absl::StrContains(deduped, R"("dedupe_state":"deduped")")) << deduped;
  EXPECT_TRUE(absl::StrContains(deduped, a_ref ? R"("reference":"dir/a")" : R"("reference":"dir/b")"))
      << deduped;
  EXPECT_TRUE(absl::StrContains(a, R"("hash_state":"full")")) << a;
  EXPECT_TRUE(absl::StrContains(a, R"("size_group":3)")) << a;
  EXPECT_TRUE(absl::StrContains(a, R"("identical":["dir/b"])")) << a;

  const std::string d = Json("dir/differs");
  EXPECT_TRUE(absl::StrContains(d, R"("dedupe_state":"unique")")) << d;
  EXPECT_TRUE(absl::StrContains(d, R"("identical":[])")) << d;
  EXPECT_TRUE(absl::StrContains(d, R"("changed":true)")) << d;
  EXPECT_TRUE(absl::StrContains(a, R"("changed":false)")) << a;

  const std::string lone = Json("lone");
  EXPECT_TRUE(absl::StrContains(lone, R"("size_group":1)")) << lone;
  EXPECT_TRUE(absl::StrContains(lone, R"("hash_state":"none")")) << lone;
  EXPECT_TRUE(absl::StrContains(lone, "waiting for a partner")) << lone;

  const std::string late = Json("late");
  EXPECT_TRUE(absl::StrContains(late, R"("waiting":true)")) << late;
  EXPECT_TRUE(absl::StrContains(late, R"("dedupe_state":"pending")")) << late;
  EXPECT_TRUE(absl::StrContains(late, "waits for its stability wait to end")) << late;

  EXPECT_TRUE(absl::StrContains(Json("tiny"), R"("reason":"too_small")"));
  EXPECT_TRUE(absl::StrContains(Json("x.skip"), R"("reason":"excluded")"));
  EXPECT_TRUE(absl::StrContains(Json("dir"), R"("reason":"not_regular")"));
  EXPECT_TRUE(absl::StrContains(Json("new"), R"("reason":"not_scanned")"));
  EXPECT_TRUE(absl::StrContains(Json("bound/a"), R"("reason":"other_mount")"));
  const std::string prefixes = Json("p1") + Json("p2");
  EXPECT_TRUE(absl::StrContains(prefixes, R"("hash_state":"prefix")")) << prefixes;
  const std::string skipped = Json("i1") + Json("i2");
  EXPECT_TRUE(absl::StrContains(skipped, R"("dedupe_state":"skipped","skip_kind":"immutable")"))
      << skipped;

  // The text form, with -v, for people (and for the README).
  CommandResult text = Btrdupd({"--explain", "-v", Path("dir/a"), Path("dir/b"),
                                Path("dir/differs"), Path("lone"), Path("late"),
                                Path("tiny"), Path("x.skip"), Path("new"), Path("bound/a"),
                                Path("i1"), Path("i2")});
  ASSERT_EQ(text.exit_code, 0) << text.stderr_text;
  std::cout << text.stdout_text;
  EXPECT_TRUE(absl::StrContains(text.stdout_text, "identical files:\n    dir/b")) << text.stdout_text;
  EXPECT_TRUE(absl::StrContains(text.stdout_text, "not tracked: it is smaller than min_file_size"))
      << text.stdout_text;
}

TEST_F(ExplainTest, UnknownPathNoVolumeAndBadDatabaseAreOneLineErrors) {
  ASSERT_TRUE(WritePatternFile(Path("f"), kSize, 1).ok());
  ASSERT_EQ(Btrdupd({"--no-wait", mount_path()}).exit_code, 0);

  CommandResult missing = Btrdupd({"--explain", Path("no-such-file")});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_TRUE(absl::StrContains(missing.stderr_text, "cannot find")) << missing.stderr_text;

  // Known volume, nothing else: one failure out of two is exit code 1.
  CommandResult some = Btrdupd({"--explain", Path("f"), Path("no-such-file")});
  EXPECT_EQ(some.exit_code, 1) << some.stderr_text;

  // With databases kept in an empty directory, no volume has one.
  ASSERT_EQ(mkdir(Path("empty").c_str(), 0700), 0);
  CommandResult unmanaged =
      Btrdupd({"--explain", absl::StrCat("--db-path=", Path("empty")), Path("f")});
  EXPECT_EQ(unmanaged.exit_code, 3);
  EXPECT_TRUE(absl::StrContains(unmanaged.stderr_text, "on no volume btrdupd manages"))
      << unmanaged.stderr_text;

  ASSERT_TRUE(WriteFile(Path(".btrdupd/btrdupd.db"), std::string(8192, 'z')).ok());
  CommandResult damaged = Btrdupd({"--explain", Path("f")});
  EXPECT_EQ(damaged.exit_code, 3);
  EXPECT_TRUE(absl::StrContains(damaged.stderr_text, "damaged")) << damaged.stderr_text;
  EXPECT_EQ(std::count(damaged.stderr_text.begin(), damaged.stderr_text.end(), '\n'), 1)
      << damaged.stderr_text;

  CommandResult mixed = Btrdupd({"--explain", "--dry-run", Path("f")});
  EXPECT_EQ(mixed.exit_code, 2);
}

}  // namespace
}  // namespace btrdupd
