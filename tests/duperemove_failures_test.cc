// How DuperemoveBackend handles a duperemove that is not what it expects, on a real
// loopback btrfs with tests/testing/duperemove_stub.sh acting as the program: releases
// it does not know are refused at start-up; a usage error, a crash and a program that
// keeps the wrong file are failures of the backend as a whole (never per-file skips);
// a program stopped by a signal or killed at its deadline means "try again later"; the
// program runs in its own process group, which the deadline kills whole.

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon/duperemove_backend.h"
#include "daemon/duperemove_output.h"
#include "daemon/duperemove_version.h"
#include "daemon/file_opener.h"
#include "gtest/gtest.h"
#include "ioctl/errno_status.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/duperemove_test_support.h"
#include "tests/testing/files.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::BtrfsTest;
using ::btrdupd::testing::DuperemoveStub;
using ::btrdupd::testing::Physical;
using ::btrdupd::testing::RequestFor;
using ::btrdupd::testing::SharedPaths;
using ::btrdupd::testing::StubEnv;
using ::btrdupd::testing::WritePatternFile;
using Kind = DedupeOutcome::Kind;
using Vars = std::map<std::string, std::string>;

constexpr uint64_t kSize = 256 * 1024;

DuperemoveBackend::Options StubOptions() {
  DuperemoveBackend::Options options;
  options.binary = DuperemoveStub();
  return options;
}

class DuperemoveFailuresTest : public BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    ASSERT_TRUE(WritePatternFile(Path("ref"), kSize, 3).ok());
    ASSERT_TRUE(WritePatternFile(Path("a"), kSize, 3).ok());
    ASSERT_TRUE(WritePatternFile(Path("b"), kSize, 3).ok());
    absl::StatusOr<std::unique_ptr<FileOpener>> opener = FileOpener::Open(mount_path());
    ASSERT_TRUE(opener.ok()) << opener.status();
    opener_ = *std::move(opener);
  }
  DedupeRequest Request() {
    return RequestFor(mount_path(), Path("ref"), {Path("a"), Path("b")}, kSize);
  }
  DuperemoveBackend Backend(DuperemoveBackend::Options options = StubOptions()) {
    return DuperemoveBackend(opener_.get(), options);
  }
  std::unique_ptr<FileOpener> opener_;
};

TEST_F(DuperemoveFailuresTest, ReleasesWithUnknownBehaviourAreRefusedAtStartUp) {
  for (const char* version : {"v0.14.1", "v0.16", "v1.0.0", "v0.10"}) {
    StubEnv env(Vars{{"STUB_VERSION", version}});
    absl::Status status = Backend().CheckAvailable();
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << version;
    EXPECT_TRUE(IsBackendFailure(status)) << status;
    EXPECT_TRUE(absl::StrContains(status.message(), version)) << status;
    EXPECT_TRUE(absl::StrContains(status.message(), "--backend=native")) << status;
  }
  StubEnv garbage(Vars{{"STUB_VERSION", "nightly"}});
  absl::Status status = Backend().CheckAvailable();
  EXPECT_TRUE(absl::StrContains(status.message(), "cannot read duperemove's version")) << status;
}

TEST_F(DuperemoveFailuresTest, EachKnownReleaseGetsOnlyItsOptionsAndOrder) {
  for (const char* version : {"v0.15.2", "v0.15"}) {
    absl::StatusOr<DuperemoveDialect> d = DialectFor(*ParseDuperemoveVersion(
        absl::StrCat("duperemove ", version, "\n")));
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_FALSE(d->reference_first);
    EXPECT_FALSE(d->read_only_flag);
  }
  absl::StatusOr<DuperemoveDialect> old = DialectFor(*ParseDuperemoveVersion("duperemove v0.11.2"));
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->reference_first);
  EXPECT_TRUE(old->read_only_flag);
  absl::StatusOr<DuperemoveDialect> v13 = DialectFor(*ParseDuperemoveVersion("duperemove v0.13"));
  ASSERT_TRUE(v13.ok());
  EXPECT_TRUE(v13->reference_first);
  EXPECT_FALSE(v13->read_only_flag);
}

TEST_F(DuperemoveFailuresTest, UsageErrorIsAFailureOfTheBackendNotOfTheFiles) {
  StubEnv env(Vars{{"STUB_MODE", "usage"}});
  DuperemoveBackend backend = Backend();
  ASSERT_TRUE(backend.CheckAvailable().ok());
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes = backend.Dedupe(Request());
  ASSERT_FALSE(outcomes.ok());
  EXPECT_TRUE(IsBackendFailure(outcomes.status())) << outcomes.status();
  EXPECT_TRUE(absl::StrContains(outcomes.status().message(), "unrecognized option"))
      << outcomes.status();
}

TEST_F(DuperemoveFailuresTest, CrashIsAFailureOfTheBackend) {
  StubEnv env(Vars{{"STUB_MODE", "crash"}});
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes =
      Backend().Dedupe(Request());
  ASSERT_FALSE(outcomes.ok());
  EXPECT_TRUE(IsBackendFailure(outcomes.status())) << outcomes.status();
}

TEST_F(DuperemoveFailuresTest, ProgramThatKeepsAnotherFileThanTheReferenceIsCaught) {
  // Says 0.15 (keeps the last file) but keeps the first: the reference would be deduped
  // into a destination's extents.
  StubEnv env(Vars{{"STUB_VERSION", "v0.15.2"}, {"STUB_KEEPS", "first"}});
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes =
      Backend().Dedupe(Request());
  ASSERT_FALSE(outcomes.ok());
  EXPECT_TRUE(IsBackendFailure(outcomes.status())) << outcomes.status();
  EXPECT_TRUE(absl::StrContains(outcomes.status().message(), "changed the extents of the reference"))
      << outcomes.status();
}

TEST_F(DuperemoveFailuresTest, ProgramStoppedBySignalMeansTryAgainLater) {
  StubEnv env(Vars{{"STUB_MODE", "term"}});
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes =
      Backend().Dedupe(Request());
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), 2u);
  for (const DedupeOutcome& o : *outcomes) {
    EXPECT_EQ(o.kind, Kind::kFailed);
    EXPECT_TRUE(absl::IsUnavailable(o.error)) << o.error;
  }
  EXPECT_FALSE(SharedPaths(Path("ref"), Path("a")));
}

TEST_F(DuperemoveFailuresTest, DeadlineKillsTheProgramsWholeGroupAndMeansTryAgainLater) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string pids_file = absl::StrCat(tmp ? tmp : "/tmp", "/stub-pids-", getpid());
  unlink(pids_file.c_str());
  StubEnv env(Vars{{"STUB_MODE", "hang"}, {"STUB_PIDS", pids_file}});
  DuperemoveBackend::Options options = StubOptions();
  options.min_deadline = absl::Seconds(1);
  options.min_bytes_per_second = uint64_t{1} << 40;
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes =
      Backend(options).Dedupe(Request());
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  for (const DedupeOutcome& o : *outcomes) {
    EXPECT_EQ(o.kind, Kind::kFailed);
    EXPECT_TRUE(absl::IsUnavailable(o.error)) << o.error;
    EXPECT_TRUE(absl::StrContains(o.error.message(), "did not finish")) << o.error;
  }
  absl::StatusOr<std::string> text = ::btrdupd::testing::ReadFile(pids_file);
  ASSERT_TRUE(text.ok()) << text.status();
  std::vector<std::string> words =
      absl::StrSplit(absl::StripAsciiWhitespace(*text), ' ', absl::SkipEmpty());
  ASSERT_EQ(words.size(), 3u) << *text;
  int pid = 0, pgid = 0, sleeper = 0;
  ASSERT_TRUE(absl::SimpleAtoi(words[0], &pid));
  ASSERT_TRUE(absl::SimpleAtoi(words[1], &pgid));
  ASSERT_TRUE(absl::SimpleAtoi(words[2], &sleeper));
  // Its own session and group (a Ctrl-C on btrdupd's terminal does not reach it) ...
  EXPECT_EQ(pgid, pid);
  EXPECT_NE(pgid, getpgrp());
  // ... killed whole: the program it started is gone too (a zombie at most). SIGKILL
  // is delivered when the process next runs, so on a busy machine it may still show
  // as running for a moment: wait for it (bounded), it must not stay alive.
  const std::string proc = absl::StrCat("/proc/", sleeper, "/stat");
  absl::StatusOr<std::string> stat_text;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  do {
    stat_text = ::btrdupd::testing::ReadFile(proc);
    if (!stat_text.ok() || absl::StrContains(*stat_text, ") Z ")) break;
    absl::SleepFor(absl::Milliseconds(20));
  } while (absl::Now() < give_up);
  EXPECT_TRUE(!stat_text.ok() || absl::StrContains(*stat_text, ") Z ")) << *stat_text;
}

TEST_F(DuperemoveFailuresTest, StoppingBtrdupdStopsTheRunningProgramAndMeansTryAgainLater) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string pids_file = absl::StrCat(tmp ? tmp : "/tmp", "/stub-pids-stop-", getpid());
  StubEnv env(Vars{{"STUB_MODE", "hang"}, {"STUB_PIDS", pids_file}});
  DuperemoveBackend::Options options = StubOptions();
  // Asked to stop once the program has started (it wrote its pids).
  options.should_stop = [&] { return ::btrdupd::testing::ReadFile(pids_file).ok(); };
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes =
      Backend(options).Dedupe(Request());
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  for (const DedupeOutcome& o : *outcomes) {
    EXPECT_EQ(o.kind, Kind::kFailed);
    EXPECT_TRUE(absl::IsUnavailable(o.error)) << o.error;
    EXPECT_TRUE(absl::StrContains(o.error.message(), "btrdupd is stopping")) << o.error;
  }
  EXPECT_FALSE(SharedPaths(Path("ref"), Path("a")));
}

TEST_F(DuperemoveFailuresTest, MissingProgramIsAFailureOfTheBackend) {
  DuperemoveBackend::Options options;
  options.binary = "duperemove-not-installed-here";
  DuperemoveBackend backend = Backend(options);
  absl::Status status = backend.CheckAvailable();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(IsBackendFailure(status));
  EXPECT_TRUE(absl::StrContains(status.message(), "duperemove-not-installed-here"));
  EXPECT_TRUE(absl::StrContains(status.message(), "--backend=native"));
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes = backend.Dedupe(Request());
  ASSERT_FALSE(outcomes.ok());
  EXPECT_TRUE(IsBackendFailure(outcomes.status()));
}

TEST(DuperemoveOutputTest, ParsesStatusAndErrorLinesConservativelyKeepingTheErrno) {
  const std::string output =
      "Queue entire file for dedupe: /v/ref\n"
      "Queue entire file for dedupe: /proc/self/fd/4\n"
      "Error 2: No such file or directory while getting path to file /v/gone. Skipping.\n"
      "Queue entire file for dedupe: /v/changed\n"
      "Queue entire file for dedupe: /v/busy\n"
      "[0x55] Dedupe for file \"/v/changed\" had status (1) \"data changed\".\n"
      "[0x55] Dedupe for file \"/v/busy\" had status (-26) \"Text file busy\".\n"
      "Dedupe pass on 4 files completed\n";
  // Each file is known by its /proc/self/fd name and the path an older release prints.
  std::vector<DedupeOutcome> outcomes = ParseDuperemoveOutcomes(
      {{"/proc/self/fd/4", "/v/ok"},
       {"/proc/self/fd/5", "/v/gone"},
       {"/proc/self/fd/6", "/v/changed"},
       {"/proc/self/fd/7", "/v/busy"},
       {"/proc/self/fd/8", "/v/never-queued"}},
      100, output);
  ASSERT_EQ(outcomes.size(), 5u);
  EXPECT_EQ(outcomes[0].kind, Kind::kDeduped);
  EXPECT_EQ(outcomes[0].bytes_deduped, 100u);
  EXPECT_EQ(outcomes[1].kind, Kind::kFailed);
  EXPECT_EQ(ErrnoOf(outcomes[1].error), ENOENT);
  EXPECT_EQ(outcomes[2].kind, Kind::kDiffers);
  EXPECT_EQ(outcomes[3].kind, Kind::kFailed);
  EXPECT_EQ(ErrnoOf(outcomes[3].error), ETXTBSY);
  EXPECT_EQ(outcomes[4].kind, Kind::kFailed);
  EXPECT_EQ(outcomes[4].bytes_deduped, 0u);
  EXPECT_EQ(DuperemoveIoctlFailure("FAILURE: Dedupe ioctl returns 1: Operation not permitted\n"),
            std::optional<int>(1));
  EXPECT_EQ(DuperemoveIoctlFailure(output), std::nullopt);
}

TEST(DuperemoveSplitTest, NoTwoFilesOfOneInodeAndAtMostMaxFilesPerInvocation) {
  // Inode numbers: 5 is the source's; 7 three times (snapshot copies).
  std::vector<uint64_t> inos = {7, 8, 7, 5, 9, 7, 10};
  std::vector<uint64_t> bytes(inos.size(), 16);
  DuperemoveBackend::Split split =
      DuperemoveBackend::SplitInvocations(5, 16, inos, bytes, /*max_files=*/3, 1 << 20);
  EXPECT_EQ(split.same_as_source, (std::vector<size_t>{3}));
  ASSERT_EQ(split.runs.size(), 3u);
  EXPECT_EQ(split.runs[0], (std::vector<size_t>{0, 1}));
  EXPECT_EQ(split.runs[1], (std::vector<size_t>{2, 4}));
  EXPECT_EQ(split.runs[2], (std::vector<size_t>{5, 6}));
  // Names longer than the limit: one destination per invocation at least.
  split = DuperemoveBackend::SplitInvocations(5, 16, {1, 2, 3}, {100, 100, 100}, 120, 10);
  EXPECT_EQ(split.runs.size(), 3u);
}

}  // namespace
}  // namespace btrdupd
