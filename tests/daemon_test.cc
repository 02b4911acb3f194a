// Daemon mode end to end (issue 5): the built `btrdupd` binary runs as a child process
// with `--daemon` on fresh loopback btrfs volumes; the tests talk to it through its
// status socket, its log (stderr, -v) and signals, and check the files, their extents
// and the database afterwards.
//
// Time: every daemon here runs with --test-time-scale=60 (one real second is one minute
// for the daemon: see daemon/scaled_clock.h) and initial_wait_minutes=1 or 2 in the
// volume's .btrdupd.conf, so stability waits and change checks take about a second.
// Tests wait for observable states with generous deadlines; nothing asserts a duration.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/index.h"
#include "daemon/status_json.h"
#include "daemon/status_server.h"
#include "daemon/volume_name.h"
#include "ioctl/fiemap.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/daemon_process.h"
#include "tests/testing/daemon_status.h"
#include "tests/testing/files.h"
#include "tests/testing/loop_btrfs.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::JsonNumberAt;
using ::btrdupd::testing::LoopBtrfs;
using ::btrdupd::testing::PatternBytes;
using ::btrdupd::testing::ReadFile;
using ::btrdupd::testing::RunCommand;
using ::btrdupd::testing::RunChecked;
using ::btrdupd::testing::WriteFile;
using ::btrdupd::testing::WritePatternFile;
using ::testing::HasSubstr;

constexpr absl::Duration kDeadline = testing::kDaemonDeadline;
using Child = testing::DaemonProcess;
using testing::WaitFor;

std::string BinaryPath() { return testing::DaemonBinaryPath(); }
std::string Canonical(const std::string& path) { return testing::CanonicalPath(path); }

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Short paths: a Unix socket path holds at most 107 bytes, and the socket's name
    // is derived from the mount path. LoopBtrfs makes its directories under TEST_TMPDIR.
    ASSERT_OK_AND_ASSIGN(dir_, testing::DaemonTestDir::Create());
    tmp_ = dir_->path();
    socket_dir_ = dir_->socket_dir();
    ASSERT_OK_AND_ASSIGN(a_, MakeVolume());
  }

  void TearDown() override {
    children_.clear();  // kill and reap before unmounting
    volumes_.clear();
    dir_.reset();  // after the children and volumes that use it
  }

  // A new loopback btrfs (unmounted in TearDown) with its configuration file.
  absl::StatusOr<LoopBtrfs*> MakeVolume(int initial_wait_minutes = 1) {
    ASSIGN_OR_RETURN(std::unique_ptr<LoopBtrfs> fs, LoopBtrfs::Create());
    LoopBtrfs* raw = fs.get();
    volumes_.push_back(std::move(fs));
    RETURN_IF_ERROR(SetInitialWait(raw, initial_wait_minutes));
    return raw;
  }

  absl::Status SetInitialWait(LoopBtrfs* fs, int minutes) {
    return WriteFile(fs->Path(".btrdupd.conf"),
                     absl::StrCat("[DEFAULT]\ninitial_wait_minutes = ", minutes,
                                  "\nmin_file_size = 4096\n"));
  }

  std::vector<std::string> DaemonArgs(const std::vector<LoopBtrfs*>& vols,
                                      const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {BinaryPath(), "--daemon", "-v",
                                     "--socket-dir=" + socket_dir_,
                                     "--test-time-scale=60", "--scan-interval=60s"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    for (LoopBtrfs* v : vols) argv.push_back(v->mount_path());
    return argv;
  }

  Child* StartDaemon(const std::vector<LoopBtrfs*>& vols, const std::string& log_name = "",
                     const std::vector<std::string>& extra = {}) {
    const std::string log =
        absl::StrCat(tmp_, "/", log_name.empty() ? "daemon" : log_name, children_.size(),
                     ".log");
    children_.push_back(std::make_unique<Child>(DaemonArgs(vols, extra), log));
    return children_.back().get();
  }

  // Runs btrdupd to completion with `args`; returns {exit code, stdout+stderr}.
  std::pair<int, std::string> RunBinary(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {BinaryPath()};
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<testing::CommandResult> r = RunCommand(argv);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {-1, ""};
    return {r->exit_code, r->stdout_text + r->stderr_text};
  }

  std::string SocketOf(LoopBtrfs* fs) {
    return SocketPathFor(socket_dir_, VolumeNameForPath(Canonical(fs->mount_path())));
  }

  std::string DbOf(LoopBtrfs* fs) { return fs->Path(".btrdupd/btrdupd.db"); }

  // The daemon's status reply for `fs`, parsed; a null value if it does not answer.
  JsonValue Status(LoopBtrfs* fs) {
    absl::StatusOr<std::string> reply =
        QueryStatusSocket(SocketOf(fs), "status", absl::Seconds(30));
    if (!reply.ok()) return JsonValue();
    absl::StatusOr<JsonValue> v = ParseJson(*reply);
    EXPECT_TRUE(v.ok()) << v.status() << " in " << *reply;
    return v.ok() ? *v : JsonValue();
  }


  static double Queue(const JsonValue& v, absl::string_view key) {
    const JsonValue* q = v.Find("queues");
    return q == nullptr ? -1 : JsonNumberAt(*q, key);
  }

  // True once the daemon answers for `fs` with nothing left to hash or dedupe and at
  // least `min_deduped` files deduped.
  bool Settled(LoopBtrfs* fs, int min_deduped) {
    JsonValue s = Status(fs);
    return JsonNumberAt(s, "files_deduped") >= min_deduped && Queue(s, "files_to_hash") == 0 &&
           Queue(s, "files_to_dedupe") == 0 && JsonNumberAt(s, "bytes_saveable") == 0;
  }

  static bool Shared(const std::string& a, const std::string& b) {
    absl::StatusOr<UniqueFd> fa = OpenPath(a, O_RDONLY);
    absl::StatusOr<UniqueFd> fb = OpenPath(b, O_RDONLY);
    if (!fa.ok() || !fb.ok()) return false;
    absl::StatusOr<bool> shared = SharesAllExtents(fa->get(), fb->get());
    return shared.ok() && *shared;
  }

  static void ExpectContent(const std::string& path, uint64_t size, uint64_t seed) {
    absl::StatusOr<std::string> data = ReadFile(path);
    EXPECT_TRUE(data.ok()) << data.status();
    if (data.ok()) EXPECT_TRUE(*data == PatternBytes(size, seed)) << path << " changed";
  }

  static int CountLines(const std::string& log, absl::string_view needle) {
    int n = 0;
    for (absl::string_view line : absl::StrSplit(log, '\n')) {
      if (absl::StrContains(line, needle)) ++n;
    }
    return n;
  }

  std::string tmp_;
  std::unique_ptr<testing::DaemonTestDir> dir_;
  std::string socket_dir_;
  std::vector<std::unique_ptr<LoopBtrfs>> volumes_;
  std::vector<std::unique_ptr<Child>> children_;
  LoopBtrfs* a_ = nullptr;
};

TEST_F(DaemonTest, TwoVolumesAreServedInTurn) {
  ASSERT_OK_AND_ASSIGN(LoopBtrfs* b, MakeVolume());
  // Volume A: 30 duplicate pairs, each pair its own size so each is its own group. Every
  // file is eligible from the start (the clock offset makes them all old), so both
  // volumes have work at once and B must not wait for A's.
  constexpr int kPairs = 30;
  for (int i = 0; i < kPairs; ++i) {
    const uint64_t size = 2 * 1024 * 1024 + i * 4096;
    ASSERT_TRUE(WritePatternFile(a_->Path(absl::StrCat("p", i, "a")), size, 100 + i).ok());
    ASSERT_TRUE(WritePatternFile(a_->Path(absl::StrCat("p", i, "b")), size, 100 + i).ok());
  }
  // Volume B: one pair.
  ASSERT_TRUE(WritePatternFile(b->Path("x"), 256 * 1024, 7).ok());
  ASSERT_TRUE(WritePatternFile(b->Path("y"), 256 * 1024, 7).ok());

  Child* d = StartDaemon({a_, b}, "", {"--test-clock-offset=1h"});
  ASSERT_TRUE(WaitFor([&] { return Settled(a_, kPairs) && Settled(b, 1); }))
      << d->Log();
  EXPECT_TRUE(Shared(b->Path("x"), b->Path("y")));
  for (int i = 0; i < kPairs; ++i) {
    EXPECT_TRUE(Shared(a_->Path(absl::StrCat("p", i, "a")), a_->Path(absl::StrCat("p", i, "b"))))
        << i;
  }

  // B's one group was deduped while A still had most of its groups to do: one unit per
  // volume per turn.
  const std::string log = d->Log();
  const std::string a_tag = absl::StrCat(Canonical(a_->mount_path()), ": deduped");
  const std::string b_tag = absl::StrCat(Canonical(b->mount_path()), ": deduped");
  int a_before_b = 0;
  bool b_seen = false;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StrContains(line, b_tag)) {
      b_seen = true;
      break;
    }
    if (absl::StrContains(line, a_tag)) ++a_before_b;
  }
  EXPECT_TRUE(b_seen) << log;
  std::printf("groups of A deduped before B's one: %d of %d\n", a_before_b, kPairs);
  EXPECT_LT(a_before_b, kPairs / 2) << log;
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
}

TEST_F(DaemonTest, DuplicateWrittenWhileRunningIsDedupedAfterTheWait) {
  Child* d = StartDaemon({a_});
  // The first (full) scan of the empty volume is done.
  ASSERT_TRUE(WaitFor([&] {
    const JsonValue* t = Status(a_).Find("last_full_scan");
    return t != nullptr && t->type == JsonValue::Type::kString;
  })) << d->Log();

  ASSERT_TRUE(WritePatternFile(a_->Path("original"), 3 * 1024 * 1024 + 123, 42).ok());
  ASSERT_TRUE(WritePatternFile(a_->Path("copy"), 3 * 1024 * 1024 + 123, 42).ok());
  ASSERT_TRUE(WaitFor([&] { return Settled(a_, 1); })) << d->Log();

  EXPECT_TRUE(Shared(a_->Path("original"), a_->Path("copy")));
  ExpectContent(a_->Path("original"), 3 * 1024 * 1024 + 123, 42);
  ExpectContent(a_->Path("copy"), 3 * 1024 * 1024 + 123, 42);
  EXPECT_TRUE(d->running());
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
}

TEST_F(DaemonTest, FileRewrittenEveryFewSecondsIsBackedOffNotHashedEachTime) {
  ASSERT_OK(SetInitialWait(a_, 2));  // 2 s of real time at the test time scale
  constexpr uint64_t kSize = 128 * 1024;
  ASSERT_TRUE(WritePatternFile(a_->Path("stable"), kSize, 1).ok());
  ASSERT_TRUE(WritePatternFile(a_->Path("busy"), kSize, 2).ok());
  Child* d = StartDaemon({a_});
  constexpr int kRewrites = 12;
  for (int i = 0; i < kRewrites; ++i) {
    absl::SleepFor(absl::Seconds(1));
    ASSERT_TRUE(WritePatternFile(a_->Path("busy"), kSize, 1000 + i).ok());
  }
  ASSERT_EQ(d->Signal(SIGTERM), 0) << d->Log();

  const std::string log = d->Log();
  const int busy_hashed = CountLines(log, absl::StrCat("hashed ", Canonical(a_->mount_path()),
                                                       "/busy"));
  const int busy_hashed_rel = CountLines(log, "hashed busy");
  EXPECT_LE(busy_hashed + busy_hashed_rel, 2) << log;

  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(DbOf(a_));
  ASSERT_TRUE(index.ok()) << index.status();
  absl::StatusOr<std::vector<FileRecord>> files = (*index)->FilesOfSize(kSize);
  ASSERT_TRUE(files.ok()) << files.status();
  bool found = false;
  for (const FileRecord& f : *files) {
    if (f.path != "busy") continue;
    found = true;
    EXPECT_GE(f.backoff_level, 2) << "a file seen changing again must wait longer";
    EXPECT_GT(f.next_eligible - f.last_changed, absl::Minutes(2))
        << "its wait grew beyond initial_wait_minutes";
  }
  EXPECT_TRUE(found);
}

TEST_F(DaemonTest, SigtermMidDedupeLeavesEveryFileIntactAndTheDatabaseConsistent) {
  constexpr int kGroups = 24;
  constexpr int kCopies = 3;
  constexpr uint64_t kSize = 2 * 1024 * 1024 + 4096;
  for (int g = 0; g < kGroups; ++g) {
    for (int c = 0; c < kCopies; ++c) {
      ASSERT_TRUE(
          WritePatternFile(a_->Path(absl::StrCat("g", g, "c", c)), kSize + g * 4096, g).ok());
    }
  }
  Child* d = StartDaemon({a_});
  ASSERT_TRUE(WaitFor([&] { return JsonNumberAt(Status(a_), "files_deduped") >= 1; })) << d->Log();
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
  EXPECT_THAT(d->Log(), HasSubstr("daemon stopped"));

  for (int g = 0; g < kGroups; ++g) {
    for (int c = 0; c < kCopies; ++c) {
      ExpectContent(a_->Path(absl::StrCat("g", g, "c", c)), kSize + g * 4096, g);
    }
  }
  // Every file the database calls deduped really shares its reference's extents.
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(DbOf(a_));
  ASSERT_TRUE(index.ok()) << index.status();
  int deduped = 0;
  for (int g = 0; g < kGroups; ++g) {
    absl::StatusOr<std::vector<FileRecord>> files = (*index)->FilesOfSize(kSize + g * 4096);
    ASSERT_TRUE(files.ok()) << files.status();
    EXPECT_EQ(files->size(), static_cast<size_t>(kCopies));
    for (const FileRecord& f : *files) {
      if (f.dedupe_state != DedupeState::kDeduped) continue;
      ++deduped;
      absl::StatusOr<std::optional<FileRecord>> ref = (*index)->GetFile(f.reference_id);
      ASSERT_TRUE(ref.ok() && ref->has_value()) << f.path;
      EXPECT_TRUE(Shared(a_->Path(f.path), a_->Path((*ref)->path))) << f.path;
    }
  }
  EXPECT_GE(deduped, 1);
  absl::StatusOr<std::vector<ReadOnlyFlip>> flips = (*index)->PendingReadOnlyFlips();
  ASSERT_TRUE(flips.ok());
  EXPECT_TRUE(flips->empty());
}

TEST_F(DaemonTest, KillNineThenRestartContinuesAndRestoresReadOnlyFlags) {
  // A read-only snapshot left writable by a "killed run": its flip is on record.
  ASSERT_TRUE(RunChecked({"btrfs", "subvolume", "create", a_->Path("sub")}).ok());
  ASSERT_TRUE(WritePatternFile(a_->Path("sub/f"), 64 * 1024, 5).ok());
  ASSERT_TRUE(
      RunChecked({"btrfs", "subvolume", "snapshot", "-r", a_->Path("sub"), a_->Path("snap")})
          .ok());
  absl::StatusOr<std::string> rootid =
      RunChecked({"btrfs", "inspect-internal", "rootid", a_->Path("snap")});
  ASSERT_TRUE(rootid.ok()) << rootid.status();
  ASSERT_EQ(mkdir(a_->Path(".btrdupd").c_str(), 0700), 0);
  {
    absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(DbOf(a_));
    ASSERT_TRUE(index.ok()) << index.status();
    ReadOnlyFlip flip;
    flip.subvol_id = std::stoull(*rootid);
    flip.path = "snap";
    flip.flipped_at = absl::Now();
    ASSERT_TRUE((*index)->RecordReadOnlyFlip(flip).ok());
  }
  ASSERT_TRUE(
      RunChecked({"btrfs", "property", "set", "-ts", a_->Path("snap"), "ro", "false"}).ok());

  constexpr int kGroups = 24;
  constexpr int kCopies = 3;
  constexpr uint64_t kSize = 1024 * 1024;
  for (int g = 0; g < kGroups; ++g) {
    for (int c = 0; c < kCopies; ++c) {
      ASSERT_TRUE(
          WritePatternFile(a_->Path(absl::StrCat("g", g, "c", c)), kSize + g * 4096, g).ok());
    }
  }
  Child* first = StartDaemon({a_});
  ASSERT_TRUE(WaitFor([&] { return JsonNumberAt(Status(a_), "files_deduped") >= 1; })) << first->Log();
  EXPECT_EQ(first->Signal(SIGKILL), 128 + SIGKILL);

  Child* second = StartDaemon({a_});
  ASSERT_TRUE(WaitFor([&] { return Settled(a_, kGroups * (kCopies - 1)); }))
      << first->Log() << second->Log();

  absl::StatusOr<std::string> ro =
      RunChecked({"btrfs", "property", "get", "-ts", a_->Path("snap"), "ro"});
  ASSERT_TRUE(ro.ok()) << ro.status();
  EXPECT_THAT(*ro, HasSubstr("ro=true"));
  for (int g = 0; g < kGroups; ++g) {
    for (int c = 0; c < kCopies; ++c) {
      const std::string path = a_->Path(absl::StrCat("g", g, "c", c));
      ExpectContent(path, kSize + g * 4096, g);
      EXPECT_TRUE(Shared(path, a_->Path(absl::StrCat("g", g, "c0")))) << path;
    }
  }
  JsonValue s = Status(a_);
  // Every file is still tracked: kGroups * kCopies plus sub/f (snap/f, its unchanged
  // copy in a snapshot, has no row of its own).
  EXPECT_EQ(JsonNumberAt(s, "files_tracked"), kGroups * kCopies + 1);
  EXPECT_EQ(second->Signal(SIGTERM), 0) << second->Log();
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(DbOf(a_));
  ASSERT_TRUE(index.ok()) << index.status();
  absl::StatusOr<std::vector<ReadOnlyFlip>> flips = (*index)->PendingReadOnlyFlips();
  ASSERT_TRUE(flips.ok());
  EXPECT_TRUE(flips->empty());
}

TEST_F(DaemonTest, StatusReplyParsesAndItsCountsMatchTheDatabase) {
  for (int g = 0; g < 5; ++g) {
    for (int c = 0; c < 2 + g; ++c) {
      ASSERT_TRUE(
          WritePatternFile(a_->Path(absl::StrCat("s", g, "_", c)), 40000 + g * 1000, g).ok());
    }
  }
  ASSERT_TRUE(WritePatternFile(a_->Path("unique"), 50000, 99).ok());
  Child* d = StartDaemon({a_});
  ASSERT_TRUE(WaitFor([&] { return Settled(a_, 1 + 2 + 3 + 4 + 5); })) << d->Log();
  JsonValue s = Status(a_);

  EXPECT_EQ(JsonNumberAt(s, "pid"), d->pid());
  EXPECT_EQ(s.Find("volume")->string, Canonical(a_->mount_path()));
  EXPECT_EQ(s.Find("state")->string, "ok");
  EXPECT_FALSE(s.Find("version")->string.empty());
  EXPECT_GE(JsonNumberAt(s, "uptime_seconds"), 0);
  EXPECT_EQ(s.Find("last_full_scan")->type, JsonValue::Type::kString);
  EXPECT_EQ(s.Find("next_vacuum")->type, JsonValue::Type::kString);
  EXPECT_EQ(s.Find("next_dedupe_reset")->type, JsonValue::Type::kString);
  const JsonValue* rate = s.Find("rate");
  ASSERT_NE(rate, nullptr);
  EXPECT_GT(JsonNumberAt(*rate->Find("since_start"), "files_per_second"), 0);

  // The people's view and the raw JSON from the client.
  std::pair<int, std::string> people =
      RunBinary({"--daemon-status", "--socket-dir=" + socket_dir_, a_->mount_path()});
  EXPECT_EQ(people.first, 0) << people.second;
  EXPECT_THAT(people.second, HasSubstr("15 files"));
  std::pair<int, std::string> json = RunBinary(
      {"--daemon-status", "--json", "--socket-dir=" + socket_dir_, a_->mount_path()});
  EXPECT_EQ(json.first, 0) << json.second;
  EXPECT_TRUE(ParseJson(json.second).ok()) << json.second;

  ASSERT_EQ(d->Signal(SIGTERM), 0) << d->Log();
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(DbOf(a_));
  ASSERT_TRUE(index.ok()) << index.status();
  absl::StatusOr<IndexStats> stats = (*index)->Stats(absl::Now());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(JsonNumberAt(s, "files_tracked"), stats->files_tracked);
  EXPECT_EQ(stats->files_tracked, 2 + 3 + 4 + 5 + 6 + 1);
  EXPECT_EQ(JsonNumberAt(s, "files_deduped"), stats->files_deduped);
  EXPECT_EQ(JsonNumberAt(s, "bytes_shared"), static_cast<double>(stats->bytes_deduped));
  EXPECT_EQ(JsonNumberAt(s, "bytes_freed"), static_cast<double>(stats->bytes_freed));
  EXPECT_EQ(JsonNumberAt(s, "duplicate_groups"), stats->duplicate_groups);
  EXPECT_EQ(JsonNumberAt(s, "files_skipped"), stats->files_skipped);
  EXPECT_EQ(stats->files_deduped, 15);
}

TEST_F(DaemonTest, DatabaseDirectoryTheDaemonCreatesIsNocow) {
  Child* d = StartDaemon({a_});
  ASSERT_TRUE(WaitFor([&] { return JsonNumberAt(Status(a_), "pid") == d->pid(); })) << d->Log();
  // As a one-shot run makes it: SQLite rewrites pages in place, so copy-on-write would
  // only fragment the database (daemon/volume_open.h).
  absl::StatusOr<testing::CommandResult> lsattr =
      RunCommand({"lsattr", "-d", a_->Path(".btrdupd")});
  ASSERT_TRUE(lsattr.ok()) << lsattr.status();
  ASSERT_EQ(lsattr->exit_code, 0) << lsattr->stderr_text;
  const std::string flags = lsattr->stdout_text.substr(0, lsattr->stdout_text.find(' '));
  EXPECT_NE(flags.find('C'), std::string::npos) << lsattr->stdout_text;
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
}

TEST_F(DaemonTest, SecondInstanceIsRefusedNamingThePid) {
  Child* d = StartDaemon({a_});
  ASSERT_TRUE(WaitFor([&] { return JsonNumberAt(Status(a_), "pid") == d->pid(); })) << d->Log();

  // Another daemon (with its own socket directory, so only the lock can stop it).
  const std::string other_dir = tmp_ + "/other";
  ASSERT_EQ(mkdir(other_dir.c_str(), 0755), 0);
  std::pair<int, std::string> second =
      RunBinary({"--daemon", "--socket-dir=" + other_dir, a_->mount_path()});
  EXPECT_NE(second.first, 0);
  EXPECT_THAT(second.second, HasSubstr(absl::StrCat("pid ", d->pid())));
  EXPECT_THAT(second.second, HasSubstr("already being processed"));

  // A one-shot run is refused the same way.
  std::pair<int, std::string> one_shot = RunBinary({a_->mount_path()});
  EXPECT_NE(one_shot.first, 0);
  EXPECT_THAT(one_shot.second, HasSubstr(absl::StrCat("pid ", d->pid())));

  EXPECT_TRUE(d->running());
  EXPECT_EQ(JsonNumberAt(Status(a_), "pid"), d->pid());
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
}

TEST_F(DaemonTest, DaemonStatusWithoutADaemonSaysSoAndFails) {
  std::pair<int, std::string> r =
      RunBinary({"--daemon-status", "--socket-dir=" + socket_dir_, a_->mount_path()});
  EXPECT_NE(r.first, 0);
  EXPECT_THAT(r.second, HasSubstr("no btrdupd daemon is running"));
}

// Connects to `path`; returns the fd or -1.
int Connect(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

TEST_F(DaemonTest, ThousandRapidConnectionsAndGarbageLeaveTheDaemonServing) {
  Child* d = StartDaemon({a_});
  ASSERT_TRUE(WaitFor([&] { return JsonNumberAt(Status(a_), "pid") == d->pid(); })) << d->Log();
  const std::string socket = SocketOf(a_);

  struct stat st;
  ASSERT_EQ(stat(socket.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, 0u);

  std::vector<int> held;  // slow clients that never finish their request
  const std::string oversized(64 * 1024, 'x');
  const std::string binary = PatternBytes(300, 3);
  for (int i = 0; i < 1000; ++i) {
    int fd = Connect(socket);
    if (fd < 0) continue;  // backlog full for a moment: that is the kernel's business
    switch (i % 5) {
      case 0:  // connect and hang up
        close(fd);
        break;
      case 1:  // garbage request
        (void)!send(fd, "GET / HTTP/1.0\r\n\r\n", 18, MSG_NOSIGNAL);
        close(fd);
        break;
      case 2:  // oversized, no newline
        (void)!send(fd, oversized.data(), oversized.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        close(fd);
        break;
      case 3:  // binary junk with a newline
        (void)!send(fd, (binary + "\n").data(), binary.size() + 1, MSG_NOSIGNAL);
        close(fd);
        break;
      case 4:  // half a request, left open
        (void)!send(fd, "sta", 3, MSG_NOSIGNAL);
        if (held.size() < 50) {
          held.push_back(fd);
        } else {
          close(fd);
        }
        break;
    }
  }
  // A garbage request gets an error reply, not silence.
  int fd = Connect(socket);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(send(fd, "bogus\n", 6, MSG_NOSIGNAL), 6);
  std::string reply;
  char buf[512];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) reply.append(buf, n);
  close(fd);
  absl::StatusOr<JsonValue> error = ParseJson(reply);
  ASSERT_TRUE(error.ok()) << reply;
  EXPECT_NE(error->Find("error"), nullptr) << reply;

  // Still serving status, and still deduping, while the slow clients hang on.
  EXPECT_EQ(JsonNumberAt(Status(a_), "pid"), d->pid());
  ASSERT_TRUE(WritePatternFile(a_->Path("one"), 100000, 8).ok());
  ASSERT_TRUE(WritePatternFile(a_->Path("two"), 100000, 8).ok());
  EXPECT_TRUE(WaitFor([&] { return Settled(a_, 1); })) << d->Log();
  EXPECT_TRUE(Shared(a_->Path("one"), a_->Path("two")));
  for (int h : held) close(h);
  EXPECT_TRUE(d->running());
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
}

TEST_F(DaemonTest, SighupWithABadConfigKeepsTheOldSettings) {
  Child* d = StartDaemon({a_});
  ASSERT_TRUE(WaitFor([&] { return JsonNumberAt(Status(a_), "pid") == d->pid(); })) << d->Log();
  ASSERT_TRUE(WriteFile(a_->Path(".btrdupd.conf"), "[DEFAULT]\nno_such_key = 1\n").ok());
  kill(d->pid(), SIGHUP);
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(d->Log(), "keeping the previous settings");
  })) << d->Log();
  EXPECT_THAT(d->Log(), HasSubstr("no_such_key"));
  // It goes on working with the old settings.
  ASSERT_TRUE(WritePatternFile(a_->Path("one"), 100000, 8).ok());
  ASSERT_TRUE(WritePatternFile(a_->Path("two"), 100000, 8).ok());
  EXPECT_TRUE(WaitFor([&] { return Settled(a_, 1); })) << d->Log();
  JsonValue s = Status(a_);
  EXPECT_EQ(JsonNumberAt(*s.Find("errors"), "config"), 1);
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
}

TEST_F(DaemonTest, VanishedVolumeIsRetriedWhileTheOtherGoesOn) {
  ASSERT_OK_AND_ASSIGN(LoopBtrfs* b, MakeVolume());
  // Databases outside the volumes, so B can be taken away under the daemon.
  const std::string db_dir = tmp_ + "/db";
  ASSERT_EQ(mkdir(db_dir.c_str(), 0700), 0);
  std::vector<std::string> argv = DaemonArgs({a_, b});
  argv.insert(argv.begin() + 1, "--db-dir=" + db_dir);
  children_.push_back(std::make_unique<Child>(argv, tmp_ + "/vanish.log"));
  Child* d = children_.back().get();
  ASSERT_TRUE(WaitFor([&] {
    return Status(b).Find("last_full_scan") != nullptr &&
           Status(b).Find("last_full_scan")->type == JsonValue::Type::kString;
  })) << d->Log();

  // B disappears (lazy unmount: the daemon still holds descriptors on it).
  ASSERT_TRUE(RunChecked({"umount", "-l", b->mount_path()}).ok());
  ASSERT_TRUE(WaitFor([&] { return Status(b).Find("state") != nullptr &&
                                   Status(b).Find("state")->string == "failed"; }))
      << d->Log();
  // A goes on.
  ASSERT_TRUE(WritePatternFile(a_->Path("one"), 100000, 8).ok());
  ASSERT_TRUE(WritePatternFile(a_->Path("two"), 100000, 8).ok());
  EXPECT_TRUE(WaitFor([&] { return Settled(a_, 1); })) << d->Log();

  // B comes back and is served again.
  ASSERT_TRUE(RunChecked({"mount", "-o", "loop", b->image_path(), b->mount_path()}).ok());
  ASSERT_TRUE(WritePatternFile(b->Path("x"), 100000, 9).ok());
  ASSERT_TRUE(WritePatternFile(b->Path("y"), 100000, 9).ok());
  EXPECT_TRUE(WaitFor([&] { return Settled(b, 1); })) << d->Log();
  EXPECT_EQ(Status(b).Find("state")->string, "ok");
  EXPECT_THAT(d->Log(), HasSubstr("will retry"));
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
}

TEST_F(DaemonTest, VacuumAndDedupeResetRunWhenDueAndAreRecorded) {
  // One real second is one day here, so the 1- and 2-day intervals come in seconds.
  ASSERT_TRUE(WriteFile(a_->Path(".btrdupd.conf"),
                        "[DEFAULT]\ninitial_wait_minutes = 1\nmin_file_size = 4096\n"
                        "vacuum_interval_days = 1\ndedup_reset_interval_days = 2\n")
                  .ok());
  ASSERT_TRUE(WritePatternFile(a_->Path("one"), 100000, 8).ok());
  ASSERT_TRUE(WritePatternFile(a_->Path("two"), 100000, 8).ok());
  std::vector<std::string> argv = {BinaryPath(), "--daemon", "-v",
                                   "--socket-dir=" + socket_dir_,
                                   "--test-time-scale=86400", "--scan-interval=24h",
                                   a_->mount_path()};
  children_.push_back(std::make_unique<Child>(argv, tmp_ + "/maintenance.log"));
  Child* d = children_.back().get();
  auto is_time = [](const JsonValue& s, absl::string_view key) {
    const JsonValue* t = s.Find(key);
    return t != nullptr && t->type == JsonValue::Type::kString;
  };
  ASSERT_TRUE(WaitFor([&] {
    JsonValue s = Status(a_);
    return is_time(s, "last_vacuum") && is_time(s, "last_dedupe_reset");
  })) << d->Log();
  EXPECT_THAT(d->Log(), HasSubstr("vacuumed the database"));
  EXPECT_THAT(d->Log(), HasSubstr("forgot dedupe states"));
  // After the reset the pair is verified again (already sharing: no new dedupe needed).
  EXPECT_TRUE(WaitFor([&] { return Settled(a_, 1); })) << d->Log();
  EXPECT_TRUE(Shared(a_->Path("one"), a_->Path("two")));
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();

  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(DbOf(a_));
  ASSERT_TRUE(index.ok()) << index.status();
  for (const char* key : {"last_vacuum", "last_dedupe_reset"}) {
    absl::StatusOr<std::optional<std::string>> value = (*index)->GetMeta(key);
    ASSERT_TRUE(value.ok()) << value.status();
    EXPECT_TRUE(value->has_value()) << key << " not recorded";
  }
}

TEST_F(DaemonTest, FilesBecomingEligibleDuringAPassAreNotForgotten) {
  Child* d = StartDaemon({a_});
  ASSERT_TRUE(WaitFor([&] { return JsonNumberAt(Status(a_), "pid") == d->pid(); })) << d->Log();
  // Pairs arrive over a few seconds, so their stability waits end one after another
  // while the engine's passes run; none may be left behind once the daemon sleeps.
  constexpr int kPairs = 40;
  for (int i = 0; i < kPairs; ++i) {
    const uint64_t size = 50000 + i * 1000;
    ASSERT_TRUE(WritePatternFile(a_->Path(absl::StrCat("e", i, "a")), size, 300 + i).ok());
    ASSERT_TRUE(WritePatternFile(a_->Path(absl::StrCat("e", i, "b")), size, 300 + i).ok());
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(WaitFor([&] { return Settled(a_, kPairs); })) << d->Log();
  for (int i = 0; i < kPairs; ++i) {
    EXPECT_TRUE(Shared(a_->Path(absl::StrCat("e", i, "a")), a_->Path(absl::StrCat("e", i, "b"))))
        << i;
  }
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
}

}  // namespace
}  // namespace btrdupd

namespace btrdupd {
namespace {

TEST_F(DaemonTest, IdleActivityNamesTheNearestThingItWillDo) {
  // Nothing to hash; the next vacuum is a month away, the next change check a minute.
  Child* d = StartDaemon({a_});
  std::string activity;
  ASSERT_TRUE(WaitFor([&] {
    const JsonValue s = Status(a_);
    const JsonValue* a = s.Find("activity");
    activity = a != nullptr ? a->string : "";
    return absl::StartsWith(activity, "idle");
  })) << activity << d->Log();
  EXPECT_TRUE(absl::StartsWith(activity, "idle; next: change check at ")) << activity;
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
}

TEST_F(DaemonTest, AnotherDatabasePathDoesNotGetAroundTheVolumeLock) {
  Child* d = StartDaemon({a_});
  ASSERT_TRUE(WaitFor([&] { return JsonNumberAt(Status(a_), "pid") == d->pid(); })) << d->Log();
  // The volume is locked by filesystem and subvolume, not by database path.
  const std::string dbs = tmp_ + "/dbs";
  std::pair<int, std::string> one_shot =
      RunBinary({"--db-dir=" + dbs, "--no-wait", a_->mount_path()});
  EXPECT_EQ(one_shot.first, 3);
  EXPECT_THAT(one_shot.second, HasSubstr(absl::StrCat("pid ", d->pid())));
  EXPECT_THAT(one_shot.second, HasSubstr("already being processed"));
  const std::string other_dir = tmp_ + "/other";
  ASSERT_EQ(mkdir(other_dir.c_str(), 0755), 0);
  std::pair<int, std::string> daemon = RunBinary(
      {"--daemon", "--db-dir=" + dbs, "--socket-dir=" + other_dir, a_->mount_path()});
  EXPECT_EQ(daemon.first, 3);
  EXPECT_THAT(daemon.second, HasSubstr(absl::StrCat("pid ", d->pid())));
  struct stat st;
  EXPECT_NE(stat(dbs.c_str(), &st), 0) << "the refused run created its database directory";
  EXPECT_TRUE(d->running());
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
}

TEST_F(DaemonTest, MetricsFileIsWrittenAtStartAndRewrittenEveryMinute) {
  const std::string metrics = tmp_ + "/btrdupd.prom";
  Child* d = StartDaemon({a_}, "", {"--metrics-file=" + metrics});
  const std::string up =
      absl::StrCat("btrdupd_up{volume=\"", Canonical(a_->mount_path()), "\"} 1\n");
  auto written = [&] {
    absl::StatusOr<std::string> text = ReadFile(metrics);
    return text.ok() && absl::StrContains(*text, up) &&
           absl::StrContains(*text, "# TYPE btrdupd_deduped_bytes_total counter\n");
  };
  ASSERT_TRUE(WaitFor(written)) << d->Log();
  // A minute of the daemon's clock is a second here: it comes back.
  ASSERT_EQ(unlink(metrics.c_str()), 0);
  EXPECT_TRUE(WaitFor(written)) << d->Log();
  EXPECT_EQ(d->Signal(SIGTERM), 0) << d->Log();
}

}  // namespace
}  // namespace btrdupd
