// `btrdupd --explain` end to end: the built binary, on a fresh loopback btrfs after a
// one-shot run, says for each file why it is (not) deduped (every state, with dates for
// deduped and already sharing files, and row-less snapshot copies through their source),
// and refuses unknown paths, paths on no managed volume, unreadable databases and an
// index of another schema version with one line and exit code 3, changing nothing.

#include <sqlite3.h>
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

// Runs SQL on the database file (to make what another btrdupd version wrote).
bool Sql(const std::string& db_path, const char* sql) {
  sqlite3* db = nullptr;
  bool ok = sqlite3_open(db_path.c_str(), &db) == SQLITE_OK &&
            sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
  if (!ok) std::cerr << db_path << ": " << sqlite3_errmsg(db) << "\n";
  sqlite3_close(db);
  return ok;
}

// The value of the `--status` row "LABEL:   VALUE", or "" when there is none.
std::string StatusValue(const std::string& text, const std::string& label) {
  const size_t at = text.find(absl::StrCat("  ", label, ":"));
  if (at == std::string::npos) return "";
  const size_t start = text.find_first_not_of(' ', at + label.size() + 3);
  return text.substr(start, text.find('\n', start) - start);
}

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
      Btrdupd({"--explain", absl::StrCat("--db-dir=", Path("empty")), Path("f")});
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

// The dedupe states with their dates: a copy btrdupd deduped ("deduped against REF on
// DATE") and a reflink copy that already shared the reference's extents ("already sharing
// with REF, found DATE"), which is not counted as deduped.
TEST_F(ExplainTest, DedupedAndAlreadySharingAreToldApartWithTheirDates) {
  ASSERT_TRUE(WritePatternFile(Path("a"), kSize, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path("b"), kSize, 1).ok());
  ASSERT_TRUE(RunShellChecked(absl::StrCat("cp --reflink=always '", Path("a"), "' '",
                                           Path("r"), "'")).ok());
  sync();
  ASSERT_EQ(Btrdupd({"--no-wait", mount_path()}).exit_code, 0);

  // The reference is a or r (they already share extents); the other of the two was found
  // sharing, b was deduped.
  const std::string a = Json("a");
  const std::string r = Json("r");
  const bool a_ref = absl::StrContains(a, R"("dedupe_state":"reference")");
  const std::string& found = a_ref ? r : a;
  const std::string ref_name = a_ref ? "a" : "r";
  EXPECT_TRUE(absl::StrContains(a_ref ? a : r, R"("dedupe_state":"reference")")) << a << r;
  EXPECT_TRUE(absl::StrContains(found, R"("dedupe_state":"already_shared")")) << found;
  EXPECT_TRUE(absl::StrContains(found, absl::StrCat(R"("reference":")", ref_name, R"(")")))
      << found;
  EXPECT_TRUE(absl::StrContains(found, R"("found_at":"20)")) << found;
  const std::string b = Json("b");
  EXPECT_TRUE(absl::StrContains(b, R"("dedupe_state":"deduped")")) << b;
  EXPECT_TRUE(absl::StrContains(b, R"("deduped_at":"20)")) << b;

  CommandResult text = Btrdupd({"--explain", Path("b"), Path(a_ref ? "r" : "a")});
  ASSERT_EQ(text.exit_code, 0) << text.stderr_text;
  std::cout << text.stdout_text;
  EXPECT_TRUE(absl::StrContains(text.stdout_text,
                                absl::StrCat("dedupe: deduped against ", ref_name, " on 20")))
      << text.stdout_text;
  EXPECT_TRUE(absl::StrContains(text.stdout_text,
                                absl::StrCat("dedupe: already sharing with ", ref_name,
                                             ", found 20")))
      << text.stdout_text;

  CommandResult status = Btrdupd({"--status", mount_path()});
  ASSERT_EQ(status.exit_code, 0) << status.stderr_text;
  EXPECT_EQ(StatusValue(status.stdout_text, "files deduped"), "1") << status.stdout_text;
  EXPECT_EQ(StatusValue(status.stdout_text, "files already sharing"), "1")
      << status.stdout_text;
}

// A read-only snapshot taken after a dedupe: its unchanged files have no rows (the
// source's rows stand for them) and are explained through their source.
TEST_F(ExplainTest, RowlessSnapshotCopyIsExplainedThroughItsSource) {
  ASSERT_TRUE(RunShellChecked(absl::StrCat("btrfs -q subvolume create '", Path("sv"), "'")).ok());
  ASSERT_TRUE(WritePatternFile(Path("sv/a"), kSize, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path("sv/b"), kSize, 1).ok());
  sync();
  ASSERT_EQ(Btrdupd({"--no-wait", mount_path()}).exit_code, 0);
  ASSERT_TRUE(RunShellChecked(absl::StrCat("btrfs -q subvolume snapshot -r '", Path("sv"),
                                           "' '", Path("snap"), "'")).ok());
  ASSERT_EQ(Btrdupd({"--no-wait", mount_path()}).exit_code, 0);

  const std::string sa = Json("sv/a");
  const bool a_ref = absl::StrContains(sa, R"("dedupe_state":"reference")");
  const std::string deduped = a_ref ? "b" : "a";
  const std::string ref = a_ref ? "a" : "b";
  const std::string copy = Json("snap/" + deduped);
  EXPECT_TRUE(absl::StrContains(copy, R"("tracked":true)")) << copy;
  EXPECT_TRUE(absl::StrContains(copy, absl::StrCat(R"("copy_of":"sv/)", deduped, R"(")")))
      << copy;
  EXPECT_TRUE(absl::StrContains(copy, R"("dedupe_state":"deduped")")) << copy;
  EXPECT_TRUE(absl::StrContains(copy, absl::StrCat(R"("reference":"sv/)", ref, R"(")")))
      << copy;
  const std::string ref_copy = Json("snap/" + ref);
  EXPECT_TRUE(absl::StrContains(ref_copy, absl::StrCat(R"("copy_of":"sv/)", ref, R"(")")))
      << ref_copy;
  EXPECT_TRUE(absl::StrContains(ref_copy, R"("dedupe_state":"reference")")) << ref_copy;

  // A file new in a snapshot is not a copy of anything: not scanned yet.
  ASSERT_TRUE(RunShellChecked(absl::StrCat("btrfs -q subvolume snapshot '", Path("sv"), "' '",
                                           Path("rw"), "'")).ok());
  ASSERT_TRUE(WritePatternFile(Path("rw/new"), kSize, 2).ok());
  EXPECT_TRUE(absl::StrContains(Json("rw/new"), R"("reason":"not_scanned")"));

  CommandResult text = Btrdupd({"--explain", Path("snap/" + deduped)});
  ASSERT_EQ(text.exit_code, 0) << text.stderr_text;
  std::cout << text.stdout_text;
  EXPECT_TRUE(absl::StrContains(text.stdout_text, absl::StrCat("snapshot copy of sv/", deduped)))
      << text.stdout_text;
  EXPECT_TRUE(absl::StrContains(text.stdout_text,
                                absl::StrCat("dedupe: deduped against sv/", ref, " on 20")))
      << text.stdout_text;
}

// --status and --explain only read: an index of an older schema version is not upgraded
// (the user is told to run btrdupd once), a newer one is refused, and the file is left
// byte for byte as it was. After a run upgrades it, a dedupe recorded by the older
// version is explained with an unknown date.
TEST_F(ExplainTest, StatusAndExplainNeverUpgradeTheIndex) {
  ASSERT_TRUE(WritePatternFile(Path("a"), kSize, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path("b"), kSize, 1).ok());
  sync();
  ASSERT_EQ(Btrdupd({"--no-wait", mount_path()}).exit_code, 0);
  const std::string db = Path(".btrdupd/btrdupd.db");
  // What schema version 3 wrote.
  ASSERT_TRUE(Sql(db, "ALTER TABLE files DROP COLUMN ctime_delta; "
                      "ALTER TABLE files DROP COLUMN shared_at; PRAGMA user_version=3;"));
  const absl::StatusOr<std::string> before = ::btrdupd::testing::ReadFile(db);
  ASSERT_TRUE(before.ok());

  const std::string upgrade = absl::StrCat("run 'btrdupd ", mount_path(),
                                           "' once to upgrade its index");
  CommandResult status = Btrdupd({"--status", mount_path()});
  EXPECT_EQ(status.exit_code, 3);
  EXPECT_TRUE(absl::StrContains(status.stderr_text, upgrade)) << status.stderr_text;
  CommandResult explain = Btrdupd({"--explain", Path("a")});
  EXPECT_EQ(explain.exit_code, 3);
  EXPECT_TRUE(absl::StrContains(explain.stderr_text, upgrade)) << explain.stderr_text;
  EXPECT_EQ(::btrdupd::testing::ReadFile(db).value_or(""), *before);

  // A run upgrades it; the dedupe recorded before has no date.
  ASSERT_EQ(Btrdupd({"--no-wait", mount_path()}).exit_code, 0);
  const std::string a = Json("a");
  const std::string& deduped =
      absl::StrContains(a, R"("dedupe_state":"deduped")") ? a : Json("b");
  EXPECT_TRUE(absl::StrContains(deduped, R"("deduped_at":null)")) << deduped;
  EXPECT_TRUE(absl::StrContains(deduped, "date unknown: recorded by an older btrdupd"))
      << deduped;

  ASSERT_TRUE(Sql(db, "PRAGMA user_version=99;"));
  const absl::StatusOr<std::string> newer = ::btrdupd::testing::ReadFile(db);
  status = Btrdupd({"--status", mount_path()});
  EXPECT_EQ(status.exit_code, 3);
  EXPECT_TRUE(absl::StrContains(status.stderr_text, "newer than this btrdupd understands"))
      << status.stderr_text;
  explain = Btrdupd({"--explain", Path("a")});
  EXPECT_EQ(explain.exit_code, 3);
  EXPECT_TRUE(absl::StrContains(explain.stderr_text, "newer than this btrdupd understands"))
      << explain.stderr_text;
  EXPECT_EQ(::btrdupd::testing::ReadFile(db).value_or(""), newer.value_or("?"));
}

// A file that changed after btrdupd first saw it (or after hashing: the engine's
// InvalidateFile raises the level the same way) waits longer, and says why.
TEST_F(ExplainTest, AFileThatChangedWaitsLongerAndSaysWhy) {
  ASSERT_TRUE(WritePatternFile(Path("f"), kSize, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path("g"), kSize, 2).ok());
  sync();
  ASSERT_EQ(Btrdupd({mount_path()}).exit_code, 0);
  EXPECT_TRUE(absl::StrContains(Json("f"), "waits for its stability wait to end"));
  ASSERT_TRUE(WritePatternFile(Path("f"), kSize, 3).ok());
  sync();
  ASSERT_EQ(Btrdupd({mount_path()}).exit_code, 0);
  const std::string f = Json("f");
  EXPECT_TRUE(absl::StrContains(f, R"("waiting":true,"backoff_level":1,"dedupe_state":"pending")"))
      << f;
  EXPECT_TRUE(absl::StrContains(f, "it changed after it was first seen or after it was hashed "
                                   "(1 time(s)), so it waits longer"))
      << f;
}

}  // namespace
}  // namespace btrdupd
