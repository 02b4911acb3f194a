// DuperemoveBackend on a real loopback btrfs, run against each kind of duperemove it
// must handle: the real binary (Debian's 0.11.2, or the one named by
// $BTRDUPD_TEST_DUPEREMOVE, see bench/duperemove_versions.sh) and the stub acting as
// 0.15 (keeps the LAST file of a group, no -A, aborts on two names of one inode) and
// as 0.13 (keeps the first, no -A). The same checks for each: destinations share the
// reference's extents and the reference keeps its own; a changed file is "differs";
// more than 120 files and snapshot copies with one inode number are split into
// invocations duperemove accepts.

#include "daemon/duperemove_backend.h"
#include "daemon/file_opener.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ioctl/unique_fd.h"
#include "gtest/gtest.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/duperemove_test_support.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::BtrfsTest;
using ::btrdupd::testing::DuperemoveStub;
using ::btrdupd::testing::Physical;
using ::btrdupd::testing::RealDuperemove;
using ::btrdupd::testing::RequestFor;
using ::btrdupd::testing::RunShellChecked;
using ::btrdupd::testing::SharedPaths;
using ::btrdupd::testing::StubEnv;
using ::btrdupd::testing::WritePatternFile;
using Kind = DedupeOutcome::Kind;

constexpr uint64_t kSize = 3 * 1024 * 1024 + 123;

struct Flavor {
  std::string label;
  bool stub = false;
  std::map<std::string, std::string> env;
};

class DuperemoveBackendTest : public BtrfsTest,
                              public ::testing::WithParamInterface<Flavor> {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    std::map<std::string, std::string> env = GetParam().env;
    if (GetParam().stub) {
      const char* tmp = std::getenv("TEST_TMPDIR");
      log_ = absl::StrCat(tmp ? tmp : "/tmp", "/stub-", getpid(), ".log");
      unlink(log_.c_str());
      env["STUB_LOG"] = log_;
    }
    env_ = std::make_unique<StubEnv>(env);
  }

  absl::StatusOr<std::vector<DedupeOutcome>> Dedupe(const std::string& ref,
                                                    const std::vector<std::string>& dests,
                                                    uint64_t size = kSize) {
    absl::StatusOr<std::unique_ptr<FileOpener>> opener = FileOpener::Open(mount_path());
    if (!opener.ok()) return opener.status();
    DuperemoveBackend::Options options;
    options.binary = GetParam().stub ? DuperemoveStub() : RealDuperemove();
    DuperemoveBackend backend(opener->get(), options);
    absl::Status available = backend.CheckAvailable();
    if (!available.ok()) return available;
    return backend.Dedupe(RequestFor(mount_path(), ref, dests, size));
  }

  // The stub's log: per group, the number of files and their inode numbers.
  std::vector<std::vector<uint64_t>> Groups() {
    std::vector<std::vector<uint64_t>> groups;
    absl::StatusOr<std::string> text = ::btrdupd::testing::ReadFile(log_);
    if (!text.ok()) return groups;
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
      std::vector<uint64_t> inos;
      for (size_t i = 1; i < words.size(); ++i) {
        uint64_t ino = 0;
        EXPECT_TRUE(absl::SimpleAtoi(words[i], &ino)) << line;
        inos.push_back(ino);
      }
      groups.push_back(inos);
    }
    return groups;
  }

  absl::Status Sh(const std::string& command) { return RunShellChecked(command).status(); }

  // Overwrites `path` in place with the same bytes: same inode, new extents.
  absl::Status Rewrite(const std::string& path, uint64_t seed) {
    const std::string bytes = ::btrdupd::testing::PatternBytes(kSize, seed);
    ASSIGN_OR_RETURN(UniqueFd fd, OpenPath(path, O_WRONLY));
    if (pwrite(fd.get(), bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size()) ||
        fsync(fd.get()) != 0) {
      return absl::InternalError(absl::StrCat("rewrite ", path, ": ", std::strerror(errno)));
    }
    return absl::OkStatus();
  }

  // sv/f and its copies in the read-only snapshots s1 and s2 (one inode number, three
  // different extent sets: f is rewritten with the same bytes after each snapshot), and
  // sv/g with the same bytes under another inode number. Call with ASSERT_NO_FATAL_FAILURE.
  void MakeSnapshotCopies() {
    ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume create '", Path("sv"), "'")));
    ASSERT_TRUE(WritePatternFile(Path("sv/f"), kSize, 4).ok());
    ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume snapshot -r '", Path("sv"), "' '",
                              Path("s1"), "'")));
    ASSERT_OK(Rewrite(Path("sv/f"), 4));
    ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume snapshot -r '", Path("sv"), "' '",
                              Path("s2"), "'")));
    ASSERT_OK(Rewrite(Path("sv/f"), 4));
    ASSERT_TRUE(WritePatternFile(Path("sv/g"), kSize, 4).ok());
    struct stat a, b;
    ASSERT_EQ(stat(Path("s1/f").c_str(), &a), 0);
    ASSERT_EQ(stat(Path("s2/f").c_str(), &b), 0);
    ASSERT_EQ(a.st_ino, b.st_ino);
    ASSERT_FALSE(SharedPaths(Path("s1/f"), Path("s2/f")));
    ASSERT_FALSE(SharedPaths(Path("sv/f"), Path("s1/f")));
  }

  // In the stub's log, no group held two files of one inode number or over 120 files.
  void ExpectGroupsDuperemoveAccepts() {
    if (!GetParam().stub) return;
    std::vector<std::vector<uint64_t>> groups = Groups();
    EXPECT_FALSE(groups.empty());
    for (const std::vector<uint64_t>& inos : groups) {
      EXPECT_LE(inos.size(), 120u);
      std::vector<uint64_t> sorted = inos;
      std::sort(sorted.begin(), sorted.end());
      EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end())
          << "two files of one inode number in a group";
    }
  }

  std::string log_;
  std::unique_ptr<StubEnv> env_;
};

TEST_P(DuperemoveBackendTest, DedupesGroupAgainstReferenceKeepingItsExtents) {
  const std::string ref = Path("ref");
  std::vector<std::string> dests = {Path("copy one"), Path("copy\ttwo"), Path("new\nline"),
                                    Path("deep/copy")};
  ASSERT_EQ(mkdir(Path("deep").c_str(), 0755), 0);
  ASSERT_TRUE(WritePatternFile(ref, kSize, 7).ok());
  for (const std::string& d : dests) ASSERT_TRUE(WritePatternFile(d, kSize, 7).ok());
  const std::vector<uint64_t> ref_before = Physical(ref);
  ASSERT_FALSE(SharedPaths(ref, dests[0]));

  absl::StatusOr<std::vector<DedupeOutcome>> outcomes = Dedupe(ref, dests);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), dests.size());
  for (size_t i = 0; i < dests.size(); ++i) {
    EXPECT_EQ((*outcomes)[i].destination_path, dests[i]);
    EXPECT_EQ((*outcomes)[i].kind, Kind::kDeduped) << (*outcomes)[i].error;
    EXPECT_EQ((*outcomes)[i].bytes_deduped, kSize);
    EXPECT_TRUE(SharedPaths(ref, dests[i])) << dests[i];
  }
  // The reference is the source whatever the release's order: its extents stay.
  EXPECT_EQ(Physical(ref), ref_before);
  ExpectGroupsDuperemoveAccepts();
}

TEST_P(DuperemoveBackendTest, SmallFilesAreDeduped) {
  for (uint64_t size : {uint64_t{8192}, uint64_t{20000}, uint64_t{131071}}) {
    const std::string ref = Path(absl::StrCat("ref", size));
    const std::string dest = Path(absl::StrCat("dest", size));
    ASSERT_TRUE(WritePatternFile(ref, size, size).ok());
    ASSERT_TRUE(WritePatternFile(dest, size, size).ok());
    absl::StatusOr<std::vector<DedupeOutcome>> outcomes = Dedupe(ref, {dest}, size);
    ASSERT_TRUE(outcomes.ok()) << outcomes.status();
    EXPECT_EQ((*outcomes)[0].kind, Kind::kDeduped) << size << " " << (*outcomes)[0].error;
    EXPECT_TRUE(SharedPaths(ref, dest)) << size;
  }
}

TEST_P(DuperemoveBackendTest, ChangedFileIsReportedDiffersAndNotShared) {
  const std::string ref = Path("ref");
  const std::string same = Path("same");
  const std::string changed = Path("changed");
  ASSERT_TRUE(WritePatternFile(ref, kSize, 5).ok());
  ASSERT_TRUE(WritePatternFile(same, kSize, 5).ok());
  ASSERT_TRUE(WritePatternFile(changed, kSize, 5).ok());
  {  // the last byte changes after "hashing"
    int fd = open(changed.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "!", 1, kSize - 1), 1);
    close(fd);
  }
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes = Dedupe(ref, {same, changed});
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), 2u);
  EXPECT_EQ((*outcomes)[0].kind, Kind::kDeduped) << (*outcomes)[0].error;
  EXPECT_EQ((*outcomes)[1].kind, Kind::kDiffers) << (*outcomes)[1].error;
  EXPECT_TRUE(SharedPaths(ref, same));
  EXPECT_FALSE(SharedPaths(ref, changed));
}

TEST_P(DuperemoveBackendTest, MoreThan120FilesRunInSeveralInvocationsAllAgainstTheReference) {
  constexpr uint64_t kSmall = 16384;
  const std::string ref = Path("ref");
  ASSERT_TRUE(WritePatternFile(ref, kSmall, 9).ok());
  std::vector<std::string> dests;
  for (int i = 0; i < 130; ++i) {
    dests.push_back(Path(absl::StrCat("d", i)));
    ASSERT_TRUE(WritePatternFile(dests.back(), kSmall, 9).ok());
  }
  const std::vector<uint64_t> ref_before = Physical(ref);
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes = Dedupe(ref, dests, kSmall);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), dests.size());
  for (size_t i = 0; i < dests.size(); ++i) {
    EXPECT_EQ((*outcomes)[i].kind, Kind::kDeduped) << dests[i] << (*outcomes)[i].error;
    // Beyond 120 files duperemove would start a new group with another source.
    EXPECT_TRUE(SharedPaths(ref, dests[i])) << dests[i];
  }
  EXPECT_EQ(Physical(ref), ref_before);
  ExpectGroupsDuperemoveAccepts();
  if (GetParam().stub) EXPECT_EQ(Groups().size(), 2u);
}

TEST_P(DuperemoveBackendTest, SnapshotCopiesWithOneInodeNumberAreSpreadOverInvocations) {
  ASSERT_NO_FATAL_FAILURE(MakeSnapshotCopies());
  const std::string ref = Path("sv/g");
  const std::vector<std::string> dests = {Path("sv/f"), Path("s1/f"), Path("s2/f")};
  const std::vector<uint64_t> ref_before = Physical(ref);
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes = Dedupe(ref, dests);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  for (size_t i = 0; i < dests.size(); ++i) {
    EXPECT_EQ((*outcomes)[i].kind, Kind::kDeduped) << dests[i] << (*outcomes)[i].error;
    EXPECT_TRUE(SharedPaths(ref, dests[i])) << dests[i];
  }
  EXPECT_EQ(Physical(ref), ref_before);
  ExpectGroupsDuperemoveAccepts();
  if (GetParam().stub) EXPECT_EQ(Groups().size(), 3u);
}

TEST_P(DuperemoveBackendTest, CopiesOfTheReferencesInodeNumberUseAStandInSource) {
  ASSERT_NO_FATAL_FAILURE(MakeSnapshotCopies());
  const std::string ref = Path("sv/f");
  const std::vector<std::string> dests = {Path("s1/f"), Path("s2/f"), Path("sv/g")};
  const std::vector<uint64_t> ref_before = Physical(ref);
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes = Dedupe(ref, dests);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  for (size_t i = 0; i < dests.size(); ++i) {
    EXPECT_EQ((*outcomes)[i].kind, Kind::kDeduped) << dests[i] << (*outcomes)[i].error;
    EXPECT_TRUE(SharedPaths(ref, dests[i])) << dests[i];
  }
  EXPECT_EQ(Physical(ref), ref_before);
  ExpectGroupsDuperemoveAccepts();
}

TEST_P(DuperemoveBackendTest, CopyOfTheReferencesInodeNumberWithoutStandInFailsAlone) {
  ASSERT_NO_FATAL_FAILURE(MakeSnapshotCopies());
  const std::string ref = Path("sv/f");
  const std::vector<uint64_t> ref_before = Physical(ref);
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes = Dedupe(ref, {Path("s1/f")});
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  EXPECT_EQ((*outcomes)[0].kind, Kind::kFailed);
  EXPECT_EQ((*outcomes)[0].error.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains((*outcomes)[0].error.message(), "inode number"));
  EXPECT_FALSE(SharedPaths(ref, Path("s1/f")));
  EXPECT_EQ(Physical(ref), ref_before);
}

TEST_P(DuperemoveBackendTest, MissingReferenceIsAnErrorForTheRequestNotTheBackend) {
  const std::string dest = Path("d");
  ASSERT_TRUE(WritePatternFile(dest, kSize, 1).ok());
  absl::StatusOr<std::vector<DedupeOutcome>> outcomes = Dedupe(Path("gone"), {dest});
  ASSERT_FALSE(outcomes.ok());
  EXPECT_FALSE(IsBackendFailure(outcomes.status()));
  EXPECT_TRUE(absl::IsNotFound(outcomes.status())) << outcomes.status();
  EXPECT_TRUE(absl::StrContains(outcomes.status().message(), Path("gone")));
}

INSTANTIATE_TEST_SUITE_P(
    Releases, DuperemoveBackendTest,
    ::testing::Values(Flavor{"Real", false, {}},
                      Flavor{"Stub015KeepsLast", true, {{"STUB_VERSION", "v0.15.2"}}},
                      Flavor{"Stub013KeepsFirst",
                             true,
                             {{"STUB_VERSION", "v0.13"}, {"STUB_KEEPS", "first"}}}),
    [](const ::testing::TestParamInfo<Flavor>& info) { return info.param.label; });

}  // namespace
}  // namespace btrdupd
