// The dedupe engine's logic, on the real SQLite index with a fake filesystem and a fake
// backend (tests/testing/fake_file_access.h). Real btrfs: tests/dedupe_safety_test.cc.

#include "core/dedupe_engine.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/index.h"
#include "ioctl/errno_status.h"
#include "tests/testing/fake_file_access.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using testing::FakeDedupeBackend;
using testing::FakeFileAccess;

constexpr char kRoot[] = "/vol";
constexpr uint64_t kTop = 5;

// `size` bytes of `fill`, with `tag` written at `at` (so files can differ early or late).
std::string Bytes(uint64_t size, char fill, uint64_t at = 0, std::string tag = "") {
  std::string s(size, fill);
  for (size_t i = 0; i < tag.size() && at + i < size; ++i) s[at + i] = tag[i];
  return s;
}

class DedupeEngineTest : public ::testing::Test {
 protected:
  DedupeEngineTest() : clock_(absl::FromUnixSeconds(1700000000)), backend_(&fs_) {}

  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/engine_test_",
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                                   "_", getpid());
    ASSERT_EQ(system(absl::StrCat("rm -rf '", dir, "' && mkdir -p '", dir, "'").c_str()), 0);
    db_path_ = dir + "/btrdupd.db";
    ASSERT_OK_AND_ASSIGN(index_, VolumeIndex::Open(db_path_));
    SubvolumeRecord top;
    top.id = kTop;
    ASSERT_OK(index_->UpsertSubvolume(top));
  }

  // A file in the fake filesystem and in the index, observed `age` ago (the default wait
  // is 5 minutes, so an hour makes it eligible).
  int64_t Add(const std::string& rel, const std::string& contents, uint64_t ino,
              absl::Duration age = absl::Hours(1), uint64_t subvol = kTop) {
    const std::string path = absl::StrCat(kRoot, "/", rel);
    const int64_t mtime = 1000 + static_cast<int64_t>(ino);
    if (!fs_.Exists(path) || fs_.file(path).ino != ino) fs_.AddFile(path, contents, ino, mtime);
    std::string dir;
    std::string name = rel;
    size_t slash = rel.rfind('/');
    if (slash != std::string::npos) {
      dir = rel.substr(0, slash);
      name = rel.substr(slash + 1);
    }
    absl::StatusOr<int64_t> dir_id = index_->EnsureDir(dir, subvol, 256 + dir.size());
    EXPECT_OK(dir_id);
    FileObservation seen;
    seen.subvol_id = subvol;
    seen.ino = ino;
    seen.size = contents.size();
    seen.mtime_ns = fs_.file(path).mtime_ns;
    seen.generation = 7;
    absl::StatusOr<int64_t> id =
        index_->ObserveFile(*dir_id, name, seen, clock_.Now() - age, ToStabilityPolicy(config_));
    EXPECT_OK(id);
    return id.ok() ? *id : 0;
  }

  absl::Status AddSubvolume(uint64_t id, const std::string& rel, bool read_only, bool received,
                            bool on_read_only_mount = false) {
    SubvolumeRecord s;
    s.id = id;
    s.path = rel;
    s.uuid = absl::StrCat("uuid-", id);
    s.read_only = read_only;
    s.received_uuid = received ? "recv" : "";
    RETURN_IF_ERROR(index_->UpsertSubvolume(s));
    fs_.AddSubvolume(absl::StrCat(kRoot, "/", rel),
                     SubvolumeFlags{read_only, received, on_read_only_mount});
    return absl::OkStatus();
  }

  std::unique_ptr<DedupeEngine> Engine(EngineOptions options = EngineOptions()) {
    return std::make_unique<DedupeEngine>(index_.get(), &fs_, &backend_, config_, &clock_,
                                          kRoot, options);
  }

  // One full pass; returns the results of its steps.
  std::vector<StepResult> Run(DedupeEngine& engine) {
    std::vector<StepResult> steps;
    absl::StatusOr<StepResult> last =
        engine.RunUntilIdle([&](const StepResult& r) { steps.push_back(r); });
    EXPECT_OK(last);
    return steps;
  }

  FileRecord Get(int64_t id) {
    absl::StatusOr<std::optional<FileRecord>> f = index_->GetFile(id);
    EXPECT_OK(f);
    EXPECT_TRUE(f.ok() && f->has_value()) << "no file " << id;
    return f.ok() && f->has_value() ? **f : FileRecord();
  }

  std::string P(const std::string& rel) { return absl::StrCat(kRoot, "/", rel); }

  std::string db_path_;
  FakeClock clock_;
  FakeFileAccess fs_;
  FakeDedupeBackend backend_;
  VolumeConfig config_;
  std::unique_ptr<VolumeIndex> index_;
};

TEST_F(DedupeEngineTest, AFileThatIsNotTheIndexedOneGoesBackToTheScannerUnread) {
  const int64_t a = Add("a", Bytes(20000, 'x'), 11);
  const int64_t b = Add("b", Bytes(20000, 'x'), 12);
  fs_.AddFile(P("b"), Bytes(20000, 'x'), 99);  // another inode in b's place since the scan
  auto engine = Engine();
  Run(*engine);
  EXPECT_EQ(fs_.bytes_read(P("b")), 0u);
  for (const DedupeRequest& call : backend_.calls()) {
    for (const std::string& dest : call.destination_paths) EXPECT_NE(dest, P("b"));
    EXPECT_NE(call.reference_path, P("b"));
  }
  const FileRecord moved = Get(b);
  EXPECT_EQ(moved.dedupe_state, DedupeState::kPending);  // not skipped
  EXPECT_EQ(moved.skip_detail, "");
  EXPECT_GT(moved.next_eligible, clock_.Now());  // waits for the scanner to see it again
  EXPECT_EQ(engine->stats().files_skipped, 0);
  EXPECT_NE(Get(a).dedupe_state, DedupeState::kSkipped);
}

TEST_F(DedupeEngineTest, DedupesIdenticalFilesAndLeavesUniqueSizesUnread) {
  int64_t a = Add("a", Bytes(20000, 'x'), 11);
  int64_t b = Add("b", Bytes(20000, 'x'), 12);
  int64_t c = Add("c", Bytes(30000, 'x'), 13);
  auto engine = Engine();
  Run(*engine);

  EXPECT_EQ(fs_.bytes_read(P("c")), 0u);
  EXPECT_EQ(Get(c).hash_state, HashState::kNone);
  ASSERT_EQ(backend_.calls().size(), 1u);
  EXPECT_EQ(backend_.calls()[0].reference_path, P("a"));
  EXPECT_EQ(backend_.calls()[0].destination_paths, std::vector<std::string>{P("b")});
  EXPECT_EQ(Get(a).dedupe_state, DedupeState::kReference);
  EXPECT_EQ(Get(b).dedupe_state, DedupeState::kDeduped);
  EXPECT_EQ(Get(b).reference_id, a);
  EXPECT_TRUE(fs_.SharesAllExtents(P("a"), P("b")));
  EXPECT_EQ(engine->stats().files_deduped, 1);
  EXPECT_EQ(engine->stats().bytes_shared, 20000u);
}

TEST_F(DedupeEngineTest, ReferenceIsOldestWhenNoneShares) {
  Add("young", Bytes(20000, 'y'), 11, absl::Hours(1));
  int64_t old = Add("old", Bytes(20000, 'y'), 12, absl::Hours(5));
  auto engine = Engine();
  Run(*engine);
  ASSERT_EQ(backend_.calls().size(), 1u);
  EXPECT_EQ(backend_.calls()[0].reference_path, P("old"));
  EXPECT_EQ(Get(old).dedupe_state, DedupeState::kReference);
}

TEST_F(DedupeEngineTest, ReferencePrefersMemberAlreadySharingExtents) {
  int64_t a = Add("a", Bytes(20000, 's'), 11, absl::Hours(9));  // oldest, shares nothing
  int64_t b = Add("b", Bytes(20000, 's'), 12, absl::Hours(2));
  fs_.AddFile(P("c"), Bytes(20000, 's'), 13, 1013);
  fs_.ShareExtents(P("c"), P("b"));  // c is a reflink copy of b
  int64_t c = Add("c", Bytes(20000, 's'), 13, absl::Hours(1));
  auto engine = Engine();
  Run(*engine);

  EXPECT_EQ(Get(b).dedupe_state, DedupeState::kReference);
  EXPECT_EQ(Get(c).dedupe_state, DedupeState::kAlreadyShared);  // found, not deduped
  EXPECT_EQ(Get(a).dedupe_state, DedupeState::kDeduped);
  ASSERT_EQ(backend_.calls().size(), 1u);  // c needed no call
  EXPECT_EQ(backend_.calls()[0].reference_path, P("b"));
  EXPECT_EQ(backend_.calls()[0].destination_paths, std::vector<std::string>{P("a")});
  EXPECT_EQ(engine->stats().files_already_shared, 1);
}

TEST_F(DedupeEngineTest, CopyOfSharedFileGetsItsHashWithoutBeingRead) {
  Add("a", Bytes(50000, 'h'), 11);
  fs_.AddFile(P("snap_copy"), "", 12, 1012);
  fs_.ShareExtents(P("snap_copy"), P("a"));
  int64_t copy = Add("snap_copy", Bytes(50000, 'h'), 12);
  auto engine = Engine();
  Run(*engine);
  EXPECT_EQ(fs_.bytes_read(P("snap_copy")), 0u);
  EXPECT_EQ(Get(copy).hash_state, HashState::kFull);
  EXPECT_EQ(Get(copy).dedupe_state, DedupeState::kAlreadyShared);
  EXPECT_TRUE(backend_.calls().empty());
  EXPECT_EQ(engine->stats().hashes_copied, 1);
}

TEST_F(DedupeEngineTest, StepCountsAddUpToTheEngineStats) {
  // A copied hash, prefix checks (three 1 MiB files, one a decoy), whole reads, dedupes.
  Add("a", Bytes(50000, 'h'), 11);
  fs_.AddFile(P("snap_copy"), "", 12, 1012);
  fs_.ShareExtents(P("snap_copy"), P("a"));
  Add("snap_copy", Bytes(50000, 'h'), 12);
  Add("big1", Bytes(1 << 20, 'p'), 13);
  Add("big2", Bytes(1 << 20, 'p'), 14);
  Add("decoy", Bytes(1 << 20, 'q'), 15);
  auto engine = Engine();
  EngineCounts sum;
  for (const StepResult& step : Run(*engine)) sum += step;
  const EngineStats& stats = engine->stats();
  EXPECT_EQ(sum.hashes_copied, 1);
  EXPECT_EQ(sum.prefixes_hashed, 2);  // big1 and the decoy; big2 read on in one read
  EXPECT_EQ(sum.files_hashed, 3);  // a, big1, big2
  EXPECT_EQ(sum.files_deduped, 1);
  EXPECT_EQ(sum.files_already_shared, 1);
  EXPECT_EQ(sum.backend_calls, 1);
  EXPECT_EQ(sum.batches, 2);
  EXPECT_EQ(stats.hashes_copied, sum.hashes_copied);
  EXPECT_EQ(stats.prefixes_hashed, sum.prefixes_hashed);
  EXPECT_EQ(stats.files_hashed, sum.files_hashed);
  EXPECT_EQ(stats.bytes_read, sum.bytes_read);
  EXPECT_EQ(stats.files_deduped, sum.files_deduped);
  EXPECT_EQ(stats.bytes_shared, sum.bytes_shared);
  EXPECT_EQ(stats.files_already_shared, sum.files_already_shared);
  EXPECT_EQ(stats.backend_calls, sum.backend_calls);
  EXPECT_EQ(stats.batches, sum.batches);
}

TEST_F(DedupeEngineTest, NewCopyIsDedupedAgainstTheRememberedReferenceAlone) {
  const std::string content = Bytes(16384, 'm');
  std::vector<int64_t> ids;
  for (int i = 0; i < 400; ++i) {
    ids.push_back(Add(absl::StrCat("copy", i), content, 1000 + i, absl::Hours(2)));
  }
  auto engine = Engine();
  Run(*engine);
  int64_t reference = ids[0];
  EXPECT_EQ(Get(reference).dedupe_state, DedupeState::kReference);
  size_t deduped = 0;
  for (const DedupeRequest& call : backend_.calls()) {
    EXPECT_LE(call.destination_paths.size(), 50u);  // dedup_batch_size for a large group
    deduped += call.destination_paths.size();
  }
  EXPECT_EQ(deduped, 399u);
  for (int64_t id : ids) {
    if (id != reference) {
      EXPECT_EQ(Get(id).dedupe_state, DedupeState::kDeduped) << id;
    }
  }

  const size_t calls_before = backend_.calls().size();
  const uint64_t read_before = fs_.bytes_read();
  int64_t newcomer = Add("copy400", content, 5000);
  Run(*engine);
  ASSERT_EQ(backend_.calls().size(), calls_before + 1);
  const DedupeRequest& last = backend_.calls().back();
  EXPECT_EQ(last.reference_path, P("copy0"));
  EXPECT_EQ(last.destination_paths, std::vector<std::string>{P("copy400")});
  EXPECT_EQ(fs_.bytes_read() - read_before, content.size());  // only the newcomer was read
  EXPECT_EQ(Get(newcomer).dedupe_state, DedupeState::kDeduped);
  EXPECT_EQ(Get(newcomer).reference_id, reference);
}

TEST_F(DedupeEngineTest, DeletedReferenceIsReplaced) {
  const std::string content = Bytes(20000, 'd');
  int64_t a = Add("a", content, 11, absl::Hours(3));
  int64_t b = Add("b", content, 12, absl::Hours(2));
  int64_t c = Add("c", content, 13, absl::Hours(2));
  auto engine = Engine();
  Run(*engine);
  ASSERT_EQ(Get(a).dedupe_state, DedupeState::kReference);

  fs_.Remove(P("a"));
  ASSERT_OK(index_->RemoveFile(a));
  int64_t d = Add("d", content, 14);
  const size_t calls_before = backend_.calls().size();
  Run(*engine);
  EXPECT_EQ(Get(b).dedupe_state, DedupeState::kReference);
  EXPECT_EQ(Get(c).dedupe_state, DedupeState::kDeduped);  // already shared with b
  EXPECT_EQ(Get(c).reference_id, b);
  EXPECT_EQ(Get(d).dedupe_state, DedupeState::kDeduped);
  ASSERT_EQ(backend_.calls().size(), calls_before + 1);
  EXPECT_EQ(backend_.calls().back().destination_paths, std::vector<std::string>{P("d")});
}

TEST_F(DedupeEngineTest, ChangedReferenceIsReplaced) {
  const std::string content = Bytes(20000, 'r');
  int64_t a = Add("a", content, 11, absl::Hours(3));
  int64_t b = Add("b", content, 12, absl::Hours(2));
  int64_t c = Add("c", content, 13, absl::Hours(1));
  auto engine = Engine();
  // Hash everything, then change a before it is used as the reference.
  fs_.OnRead([&](const std::string& path) {
    if (path == P("c")) fs_.Modify(P("a"), Bytes(20000, 'R'));
  });
  Run(*engine);
  EXPECT_EQ(Get(a).hash_state, HashState::kNone);  // invalidated, waits again
  EXPECT_GT(Get(a).next_eligible, clock_.Now());
  EXPECT_EQ(Get(b).dedupe_state, DedupeState::kReference);
  EXPECT_EQ(Get(c).dedupe_state, DedupeState::kDeduped);
  EXPECT_EQ(Get(c).reference_id, b);
}

TEST_F(DedupeEngineTest, DestinationThatDiffersIsInvalidatedAndWaits) {
  const std::string content = Bytes(20000, 'q');
  Add("a", content, 11, absl::Hours(2));
  int64_t b = Add("b", content, 12);
  backend_.BeforeCall([&](const DedupeRequest&) { fs_.Modify(P("b"), Bytes(20000, 'Q')); });
  auto engine = Engine();
  Run(*engine);
  FileRecord rec = Get(b);
  EXPECT_EQ(rec.hash_state, HashState::kNone);
  EXPECT_EQ(rec.dedupe_state, DedupeState::kPending);
  EXPECT_GT(rec.next_eligible, clock_.Now());
  EXPECT_FALSE(fs_.SharesAllExtents(P("a"), P("b")));
  EXPECT_EQ(engine->stats().files_changed, 1);
  EXPECT_EQ(engine->stats().files_skipped, 0);
}

TEST_F(DedupeEngineTest, FailedDestinationIsSkippedWithReasonAndTheRunGoesOn) {
  const std::string content = Bytes(20000, 'f');
  Add("a", content, 11, absl::Hours(2));
  int64_t busy = Add("busy", content, 12);
  int64_t c = Add("c", content, 13);
  backend_.FailFor(P("busy"), ErrnoToStatus(ETXTBSY, "dedupe into busy"));
  auto engine = Engine();
  Run(*engine);
  EXPECT_EQ(Get(busy).dedupe_state, DedupeState::kSkipped);
  EXPECT_EQ(Get(busy).skip_kind, SkipKind::kSwapfile);
  EXPECT_EQ(Get(c).dedupe_state, DedupeState::kDeduped);
  // The skipped file is not retried by the next pass.
  const size_t calls = backend_.calls().size();
  Run(*engine);
  EXPECT_EQ(backend_.calls().size(), calls);
}

TEST_F(DedupeEngineTest, PrefixFilterSavesFullReadsOfEarlyDifferingDecoys) {
  const uint64_t size = 1 << 20;
  const uint64_t prefix = EngineOptions().prefix_bytes;
  Add("a", Bytes(size, 'p'), 11);
  Add("b", Bytes(size, 'p'), 12);
  int64_t decoy1 = Add("decoy1", Bytes(size, 'p', 100, "one"), 13);
  int64_t decoy2 = Add("decoy2", Bytes(size, 'p', 100, "two"), 14);
  auto engine = Engine();
  Run(*engine);
  EXPECT_EQ(fs_.bytes_read(P("decoy1")), prefix);
  EXPECT_EQ(fs_.bytes_read(P("decoy2")), prefix);
  EXPECT_EQ(Get(decoy1).hash_state, HashState::kPrefix);
  EXPECT_EQ(Get(decoy2).hash_state, HashState::kPrefix);
  // Matched nothing: kUnique, so the size no longer has work until a new file arrives.
  EXPECT_EQ(Get(decoy1).dedupe_state, DedupeState::kUnique);
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> sizes,
                       index_->SizesWithWork(config_.min_file_size, clock_.Now()));
  EXPECT_TRUE(sizes.empty());
  EXPECT_EQ(fs_.bytes_read(P("a")), prefix + size);
  EXPECT_TRUE(fs_.SharesAllExtents(P("a"), P("b")));

  // A decoy arriving after the group has full hashes still costs only prefixes.
  const uint64_t before = fs_.bytes_read();
  Add("decoy3", Bytes(size, 'p', 100, "three"), 15);
  int64_t copy = Add("copy", Bytes(size, 'p'), 16);
  Run(*engine);
  EXPECT_EQ(fs_.bytes_read(P("decoy3")), prefix);
  EXPECT_LE(fs_.bytes_read() - before, 3 * prefix + size);  // decoy3, copy, one group prefix
  EXPECT_EQ(Get(copy).dedupe_state, DedupeState::kDeduped);
}

TEST_F(DedupeEngineTest, LateCopyOfAnUnmatchedDecoyIsFound) {
  const uint64_t size = 1 << 20;
  Add("a", Bytes(size, 'p'), 11);
  Add("b", Bytes(size, 'p'), 12);
  int64_t decoy = Add("decoy", Bytes(size, 'p', 100, "one"), 13);
  auto engine = Engine();
  Run(*engine);
  ASSERT_EQ(Get(decoy).hash_state, HashState::kPrefix);
  ASSERT_EQ(Get(decoy).dedupe_state, DedupeState::kUnique);
  int64_t twin = Add("twin", Bytes(size, 'p', 100, "one"), 14);
  Run(*engine);
  EXPECT_TRUE(fs_.SharesAllExtents(P("decoy"), P("twin")));
  EXPECT_EQ(Get(twin).dedupe_state, DedupeState::kDeduped);
}

// EngineOptions::commit_interval: steps share a transaction until it has passed; another
// connection sees their writes only after CommitPending() (or the pass's end); without
// it, after each step.
TEST_F(DedupeEngineTest, StepsShareATransactionOnlyWithACommitInterval) {
  const std::string content = Bytes(20000, 't');
  const int64_t a = Add("a", content, 11);
  Add("b", content, 12);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<VolumeIndex> reader, VolumeIndex::Open(db_path_));
  auto hashed_elsewhere = [&]() {
    absl::StatusOr<std::optional<FileRecord>> f = reader->GetFile(a);
    EXPECT_OK(f);
    return f.ok() && f->has_value() && (*f)->hash_state == HashState::kFull;
  };
  {
    EngineOptions options;
    options.commit_interval = absl::Hours(1);
    auto engine = Engine(options);
    ASSERT_OK_AND_ASSIGN(StepResult first, engine->Step());
    ASSERT_EQ(first.kind, StepResult::Kind::kHashed);
    EXPECT_EQ(Get(a).hash_state, HashState::kFull);  // the engine's connection sees it
    EXPECT_FALSE(hashed_elsewhere());
    ASSERT_OK(engine->CommitPending());
    EXPECT_TRUE(hashed_elsewhere());
    ASSERT_OK(engine->CommitPending());  // nothing open: nothing to do
    ASSERT_OK_AND_ASSIGN(StepResult second, engine->Step());
    EXPECT_EQ(second.kind, StepResult::Kind::kDedupeBatch);
    Run(*engine);  // the pass's end commits
    ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> seen, reader->GetFile(a));
    ASSERT_TRUE(seen.has_value());
    EXPECT_NE(seen->dedupe_state, DedupeState::kPending);
  }
}

// EngineOptions::on_deduped runs inside the deduping step's transaction: what it writes
// commits with the step's own writes (the session's running totals), and only for a
// step that deduped.
TEST_F(DedupeEngineTest, OnDedupedWritesCommitWithTheDedupingStep) {
  const std::string content = Bytes(20000, 'o');
  Add("a", content, 11);
  Add("b", content, 12);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<VolumeIndex> reader, VolumeIndex::Open(db_path_));
  int calls = 0;
  EngineOptions options;
  options.commit_interval = absl::Hours(1);
  options.on_deduped = [&](const StepResult& step) {
    ++calls;
    return index_->SetMeta("test.deduped", absl::StrCat(step.files_deduped));
  };
  auto engine = Engine(options);
  ASSERT_OK_AND_ASSIGN(StepResult first, engine->Step());
  ASSERT_EQ(first.kind, StepResult::Kind::kHashed);
  EXPECT_EQ(calls, 0);
  ASSERT_OK_AND_ASSIGN(StepResult second, engine->Step());
  ASSERT_EQ(second.kind, StepResult::Kind::kDedupeBatch);
  ASSERT_EQ(second.files_deduped, 1);
  EXPECT_EQ(calls, 1);
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> before, reader->GetMeta("test.deduped"));
  EXPECT_FALSE(before.has_value()) << "written outside the step's transaction";
  ASSERT_OK(engine->CommitPending());
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> after, reader->GetMeta("test.deduped"));
  EXPECT_EQ(after, std::optional<std::string>("1"));
}

TEST_F(DedupeEngineTest, WithoutACommitIntervalEveryStepCommits) {
  const std::string content = Bytes(20000, 'u');
  const int64_t a = Add("a", content, 11);
  Add("b", content, 12);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<VolumeIndex> reader, VolumeIndex::Open(db_path_));
  auto engine = Engine();
  ASSERT_OK_AND_ASSIGN(StepResult step, engine->Step());
  ASSERT_EQ(step.kind, StepResult::Kind::kHashed);
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> seen, reader->GetFile(a));
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->hash_state, HashState::kFull);
}

TEST_F(DedupeEngineTest, DryRunReportsGroupsAndChangesNoState) {
  const std::string content = Bytes(20000, 'n');
  std::vector<int64_t> ids = {Add("a", content, 11, absl::Hours(2)), Add("b", content, 12),
                              Add("c", content, 13)};
  EngineOptions options;
  options.dry_run = true;
  auto engine = Engine(options);
  std::vector<StepResult> steps = Run(*engine);
  std::vector<PlannedGroup> planned;
  for (const StepResult& s : steps) {
    if (s.planned.has_value()) planned.push_back(*s.planned);
  }
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_EQ(planned[0].reference_path, P("a"));
  EXPECT_EQ(planned[0].destination_paths.size(), 2u);
  EXPECT_EQ(planned[0].bytes_saveable, 40000u);
  EXPECT_EQ(engine->stats().bytes_saveable, 40000u);
  EXPECT_TRUE(backend_.calls().empty());
  for (int64_t id : ids) {
    EXPECT_EQ(Get(id).dedupe_state, DedupeState::kPending);
    EXPECT_EQ(Get(id).hash_state, HashState::kFull);  // hashing is allowed
  }
  EXPECT_FALSE(fs_.SharesAllExtents(P("a"), P("b")));
}

TEST_F(DedupeEngineTest, SmallGroupsUseMaxDedupBatchLargeGroupsDedupBatchSize) {
  config_.max_dedup_batch = 2;
  config_.large_group_threshold = 6;
  config_.dedup_batch_size = 4;
  for (int i = 0; i < 5; ++i) Add(absl::StrCat("small", i), Bytes(9000, 's'), 100 + i);
  for (int i = 0; i < 10; ++i) Add(absl::StrCat("large", i), Bytes(9500, 'l'), 200 + i);
  auto engine = Engine();
  Run(*engine);
  std::vector<size_t> small;
  std::vector<size_t> large;
  for (const DedupeRequest& call : backend_.calls()) {
    (call.size == 9000 ? small : large).push_back(call.destination_paths.size());
  }
  EXPECT_EQ(small, (std::vector<size_t>{2, 2}));
  EXPECT_EQ(large, (std::vector<size_t>{4, 4, 1}));
}

TEST_F(DedupeEngineTest, HardLinksAreHashedOnceAndNeverDedupedWithThemselves) {
  const std::string content = Bytes(20000, 'l');
  int64_t a = Add("a", content, 11, absl::Hours(2));
  fs_.AddFile(P("a_link"), content, 11, fs_.file(P("a")).mtime_ns);
  fs_.ShareExtents(P("a_link"), P("a"));
  int64_t link = Add("a_link", content, 11);
  auto engine = Engine();
  Run(*engine);
  // Only links of one inode: nothing to do at all.
  EXPECT_EQ(fs_.bytes_read(), 0u);
  EXPECT_TRUE(backend_.calls().empty());

  int64_t b = Add("b", content, 12);
  Run(*engine);
  EXPECT_EQ(fs_.bytes_read(P("a")) + fs_.bytes_read(P("a_link")), content.size());
  for (const DedupeRequest& call : backend_.calls()) {
    for (const std::string& dest : call.destination_paths) {
      EXPECT_NE(dest, call.reference_path);
      EXPECT_TRUE(dest != P("a_link") || call.reference_path != P("a"));
      EXPECT_TRUE(dest != P("a") || call.reference_path != P("a_link"));
    }
  }
  EXPECT_EQ(Get(b).dedupe_state, DedupeState::kDeduped);
  EXPECT_EQ(Get(a).dedupe_state, DedupeState::kReference);
  EXPECT_EQ(Get(link).dedupe_state, DedupeState::kSkipped);
  EXPECT_EQ(Get(link).skip_kind, SkipKind::kHardLink);
}

TEST_F(DedupeEngineTest, FileChangedWhileReadIsInvalidatedNotHashed) {
  Add("a", Bytes(20000, 'w'), 11);
  int64_t b = Add("b", Bytes(20000, 'w'), 12);
  fs_.OnRead([&](const std::string& path) {
    if (path == P("b") && fs_.file(path).contents[0] == 'w') fs_.Modify(path, Bytes(20000, 'W'));
  });
  auto engine = Engine();
  Run(*engine);
  EXPECT_EQ(Get(b).hash_state, HashState::kNone);
  EXPECT_GT(Get(b).next_eligible, clock_.Now());
  EXPECT_TRUE(backend_.calls().empty());
}

TEST_F(DedupeEngineTest, VanishedFileIsRemovedFromTheIndex) {
  Add("a", Bytes(20000, 'v'), 11);
  int64_t gone = Add("gone", Bytes(20000, 'v'), 12);
  fs_.Remove(P("gone"));
  auto engine = Engine();
  Run(*engine);
  ASSERT_OK_AND_ASSIGN(std::optional<FileRecord> rec, index_->GetFile(gone));
  EXPECT_FALSE(rec.has_value());
  EXPECT_EQ(engine->stats().files_removed, 1);
}

TEST_F(DedupeEngineTest, UnreadableFileIsSkippedWithReason) {
  Add("a", Bytes(20000, 'u'), 11);
  Add("b", Bytes(20000, 'u'), 12);
  int64_t locked = Add("locked", Bytes(20000, 'u'), 13);
  fs_.MakeUnreadable(P("locked"));
  auto engine = Engine();
  Run(*engine);
  EXPECT_EQ(Get(locked).dedupe_state, DedupeState::kSkipped);
  EXPECT_EQ(Get(locked).skip_kind, SkipKind::kNotPermitted);
  EXPECT_TRUE(fs_.SharesAllExtents(P("a"), P("b")));
}

TEST_F(DedupeEngineTest, ImmutableCopyBecomesTheReferenceAndIsNeverADestination) {
  const std::string content = Bytes(20000, 'i');
  int64_t a = Add("a", content, 11, absl::Hours(5));
  int64_t frozen = Add("frozen", content, 12);
  fs_.file(P("frozen")).attrs.immutable = true;
  auto engine = Engine();
  Run(*engine);
  EXPECT_EQ(Get(frozen).dedupe_state, DedupeState::kReference);
  EXPECT_EQ(Get(a).dedupe_state, DedupeState::kDeduped);
  for (const DedupeRequest& call : backend_.calls()) {
    for (const std::string& dest : call.destination_paths) EXPECT_NE(dest, P("frozen"));
  }
}

TEST_F(DedupeEngineTest, NocowFilesShareOnlyWithNocowFiles) {
  const std::string content = Bytes(20000, 'c');
  Add("a", content, 11, absl::Hours(5));
  Add("b", content, 12);
  int64_t nocow = Add("nocow", content, 13);
  fs_.file(P("nocow")).attrs.nocow = true;
  auto engine = Engine();
  Run(*engine);
  EXPECT_TRUE(fs_.SharesAllExtents(P("a"), P("b")));
  EXPECT_FALSE(fs_.SharesAllExtents(P("a"), P("nocow")));
  EXPECT_EQ(Get(nocow).dedupe_state, DedupeState::kSkipped);
  EXPECT_EQ(Get(nocow).skip_kind, SkipKind::kNodatasumMismatch);
}

TEST_F(DedupeEngineTest, SwapFileIsNeverReadNorDeduped) {
  Add("a", Bytes(20000, 'z'), 11);
  Add("b", Bytes(20000, 'z'), 12);
  int64_t swap = Add("swap", Bytes(20000, 'z'), 13);
  fs_.file(P("swap")).attrs.swapfile = true;
  auto engine = Engine();
  Run(*engine);
  EXPECT_EQ(fs_.bytes_read(P("swap")), 0u);
  EXPECT_EQ(Get(swap).dedupe_state, DedupeState::kSkipped);
  EXPECT_TRUE(fs_.SharesAllExtents(P("a"), P("b")));
}

TEST_F(DedupeEngineTest, ReadOnlySnapshotIsDedupedWithItsFlagUntouched) {
  const std::string content = Bytes(20000, 'o');
  ASSERT_OK(AddSubvolume(256, "snap", /*read_only=*/true, /*received=*/false));
  int64_t a = Add("a", content, 11, absl::Hours(5));
  int64_t s = Add("snap/a", content, 11, absl::Hours(1), 256);
  std::vector<bool> read_only_during_calls;
  backend_.BeforeCall([&](const DedupeRequest&) {
    read_only_during_calls.push_back(fs_.subvolume("/vol/snap").read_only);
  });
  auto engine = Engine();
  Run(*engine);
  EXPECT_EQ(Get(a).dedupe_state, DedupeState::kReference);
  EXPECT_EQ(Get(s).dedupe_state, DedupeState::kDeduped);
  EXPECT_TRUE(fs_.SharesAllExtents(P("a"), P("snap/a")));
  EXPECT_EQ(read_only_during_calls, std::vector<bool>{true});
  EXPECT_TRUE(fs_.flag_log().empty());
  EXPECT_TRUE(fs_.subvolume("/vol/snap").read_only);
  EXPECT_EQ(engine->stats().read_only_flips, 0);
  ASSERT_OK_AND_ASSIGN(std::vector<ReadOnlyFlip> pending, index_->PendingReadOnlyFlips());
  EXPECT_TRUE(pending.empty());
}

TEST_F(DedupeEngineTest, ReadOnlySnapshotRefusedWithErofsIsRetriedOnceWithTheFlagCleared) {
  backend_.RefuseReadOnlySubvolumes();  // an older kernel
  const std::string content = Bytes(20000, 'q');
  ASSERT_OK(AddSubvolume(256, "snap", /*read_only=*/true, /*received=*/false));
  int64_t a = Add("a", content, 11, absl::Hours(5));
  int64_t b = Add("b", content, 12, absl::Hours(4));
  int64_t s = Add("snap/a", content, 11, absl::Hours(1), 256);
  struct Call {
    std::vector<std::string> destinations;
    bool read_only;
    size_t flip_records;
  };
  std::vector<Call> calls;
  backend_.BeforeCall([&](const DedupeRequest& request) {
    absl::StatusOr<std::vector<ReadOnlyFlip>> records = index_->PendingReadOnlyFlips();
    EXPECT_OK(records);
    calls.push_back({request.destination_paths, fs_.subvolume("/vol/snap").read_only,
                     records.ok() ? records->size() : 0});
  });
  auto engine = Engine();
  Run(*engine);
  // One batch for both destinations, flag untouched; then only the refused one again,
  // with the flip recorded before the flag was cleared.
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].destinations, (std::vector<std::string>{P("b"), P("snap/a")}));
  EXPECT_TRUE(calls[0].read_only);
  EXPECT_EQ(calls[0].flip_records, 0u);
  EXPECT_EQ(calls[1].destinations, std::vector<std::string>{P("snap/a")});
  EXPECT_FALSE(calls[1].read_only);
  EXPECT_EQ(calls[1].flip_records, 1u);
  EXPECT_EQ(fs_.flag_log(), (std::vector<std::string>{"/vol/snap=rw", "/vol/snap=ro"}));
  EXPECT_TRUE(fs_.subvolume("/vol/snap").read_only);
  EXPECT_EQ(engine->stats().read_only_flips, 1);
  EXPECT_EQ(Get(a).dedupe_state, DedupeState::kReference);
  EXPECT_EQ(Get(b).dedupe_state, DedupeState::kDeduped);
  EXPECT_EQ(Get(s).dedupe_state, DedupeState::kDeduped);
  EXPECT_TRUE(fs_.SharesAllExtents(P("a"), P("snap/a")));
  ASSERT_OK_AND_ASSIGN(std::vector<ReadOnlyFlip> pending, index_->PendingReadOnlyFlips());
  EXPECT_TRUE(pending.empty());
}

TEST_F(DedupeEngineTest, FlagThatCannotBeRestoredKeepsItsRecordForTheNextOpen) {
  backend_.RefuseReadOnlySubvolumes();
  const std::string content = Bytes(20000, 'w');
  ASSERT_OK(AddSubvolume(256, "snap", /*read_only=*/true, /*received=*/false));
  Add("a", content, 11, absl::Hours(5));
  Add("snap/a", content, 11, absl::Hours(1), 256);
  fs_.FailSetReadOnly("/vol/snap", true, absl::InternalError("set ro: injected failure"));
  auto engine = Engine();
  std::vector<StepResult> steps = Run(*engine);
  bool reported = false;
  for (const StepResult& step : steps) {
    reported |= step.detail.find("could not restore read-only flag") != std::string::npos;
  }
  EXPECT_TRUE(reported);
  EXPECT_FALSE(fs_.subvolume("/vol/snap").read_only);
  ASSERT_OK_AND_ASSIGN(std::vector<ReadOnlyFlip> pending, index_->PendingReadOnlyFlips());
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].subvol_id, 256u);

  // The next open restores it (and a failure there keeps the record again).
  const absl::Status restore = Engine()->RestorePendingReadOnlyFlips();
  EXPECT_TRUE(absl::IsInternal(restore)) << restore;
  ASSERT_OK_AND_ASSIGN(pending, index_->PendingReadOnlyFlips());
  EXPECT_EQ(pending.size(), 1u);
  fs_.FailSetReadOnly("/vol/snap", true, absl::OkStatus());
  ASSERT_OK(Engine()->RestorePendingReadOnlyFlips());
  EXPECT_TRUE(fs_.subvolume("/vol/snap").read_only);
  ASSERT_OK_AND_ASSIGN(pending, index_->PendingReadOnlyFlips());
  EXPECT_TRUE(pending.empty());
}

TEST_F(DedupeEngineTest, ErofsFromAReadOnlyMountOrAWritableSubvolumeIsSkippedNotFlipped) {
  backend_.RefuseReadOnlySubvolumes();
  const std::string content = Bytes(20000, 'm');
  ASSERT_OK(AddSubvolume(256, "snap", /*read_only=*/true, /*received=*/false,
               /*on_read_only_mount=*/true));
  Add("a", content, 11, absl::Hours(5));
  int64_t s = Add("snap/a", content, 11, absl::Hours(1), 256);
  int64_t b = Add("b", content, 12, absl::Hours(1));
  backend_.FailFor(P("b"), ErrnoToStatus(EROFS, "dedupe into b"));
  auto engine = Engine();
  Run(*engine);
  EXPECT_TRUE(fs_.flag_log().empty());
  EXPECT_EQ(backend_.calls().size(), 1u);  // no retry
  for (int64_t id : {s, b}) {
    EXPECT_EQ(Get(id).dedupe_state, DedupeState::kSkipped);
    EXPECT_EQ(Get(id).skip_kind, SkipKind::kReadOnly);
  }
  ASSERT_OK_AND_ASSIGN(std::vector<ReadOnlyFlip> pending, index_->PendingReadOnlyFlips());
  EXPECT_TRUE(pending.empty());
}

// No space for the dedupe's metadata is the volume's condition, not the file's: the
// step fails (the daemon pauses the volume) and nothing is recorded against a file.
TEST_F(DedupeEngineTest, EnospcFromTheDedupeFailsTheStepAndSkipsNoFile) {
  const std::string content = Bytes(20000, 'n');
  int64_t a = Add("a", content, 11, absl::Hours(5));
  int64_t b = Add("b", content, 12, absl::Hours(1));
  backend_.FailFor(P("b"), ErrnoToStatus(ENOSPC, "dedupe into b"));
  auto engine = Engine();
  absl::StatusOr<StepResult> last = engine->RunUntilIdle(nullptr);
  ASSERT_FALSE(last.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(last.status())) << last.status();
  for (int64_t id : {a, b}) EXPECT_NE(Get(id).dedupe_state, DedupeState::kSkipped);

  // The whole call failing with ENOSPC does not blame the reference either.
  backend_.FailFor(P("b"), absl::OkStatus());
  backend_.FailEveryCall(ErrnoToStatus(ENOSPC, "dedupe"));
  auto again = Engine();
  last = again->RunUntilIdle(nullptr);
  ASSERT_FALSE(last.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(last.status())) << last.status();
  for (int64_t id : {a, b}) EXPECT_NE(Get(id).dedupe_state, DedupeState::kSkipped);
}

TEST_F(DedupeEngineTest, ReceivedSnapshotIsNeverADestinationNorFlipped) {
  backend_.RefuseReadOnlySubvolumes();  // it would answer EROFS if asked
  const std::string content = Bytes(20000, 'e');
  ASSERT_OK(AddSubvolume(257, "recv", /*read_only=*/true, /*received=*/true));
  int64_t r1 = Add("recv/r1", content, 21, absl::Hours(3), 257);
  int64_t r2 = Add("recv/r2", content, 22, absl::Hours(2), 257);
  int64_t live = Add("live", content, 23, absl::Hours(9));
  auto engine = Engine();
  Run(*engine);
  EXPECT_TRUE(fs_.flag_log().empty());
  EXPECT_TRUE(fs_.subvolume("/vol/recv").read_only);
  for (const DedupeRequest& call : backend_.calls()) {
    for (const std::string& dest : call.destination_paths) {
      EXPECT_EQ(dest.find("/vol/recv/"), std::string::npos) << dest;
    }
  }
  // A copy that cannot be a destination is the reference, so the live copy still shares.
  EXPECT_EQ(Get(r1).dedupe_state, DedupeState::kReference);
  EXPECT_EQ(Get(live).dedupe_state, DedupeState::kDeduped);
  EXPECT_TRUE(fs_.SharesAllExtents(P("live"), P("recv/r1")));
  EXPECT_EQ(Get(r2).dedupe_state, DedupeState::kSkipped);
  EXPECT_EQ(Get(r2).skip_kind, SkipKind::kReceivedSnapshot);
}

TEST_F(DedupeEngineTest, ReceivedCopyArrivingLaterBecomesTheReference) {
  const std::string content = Bytes(20000, 'l');
  int64_t a = Add("a", content, 11, absl::Hours(9));
  int64_t b = Add("b", content, 12, absl::Hours(8));
  auto engine = Engine();
  Run(*engine);
  ASSERT_EQ(Get(a).dedupe_state, DedupeState::kReference);
  ASSERT_EQ(Get(b).dedupe_state, DedupeState::kDeduped);

  ASSERT_OK(AddSubvolume(257, "recv", /*read_only=*/true, /*received=*/true));
  int64_t r = Add("recv/a", content, 21, absl::Hours(1), 257);
  Run(*engine);
  EXPECT_EQ(Get(r).dedupe_state, DedupeState::kReference);
  for (int64_t id : {a, b}) {
    EXPECT_EQ(Get(id).dedupe_state, DedupeState::kDeduped) << id;
    EXPECT_EQ(Get(id).reference_id, r) << id;
  }
  EXPECT_TRUE(fs_.SharesAllExtents(P("a"), P("recv/a")));
  EXPECT_TRUE(fs_.SharesAllExtents(P("b"), P("recv/a")));
  EXPECT_TRUE(fs_.flag_log().empty());
  for (const DedupeRequest& call : backend_.calls()) {
    for (const std::string& dest : call.destination_paths) EXPECT_NE(dest, P("recv/a"));
  }
  // Settled: another pass changes nothing.
  const size_t calls = backend_.calls().size();
  Run(*engine);
  EXPECT_EQ(backend_.calls().size(), calls);
  EXPECT_EQ(Get(r).dedupe_state, DedupeState::kReference);
}

TEST_F(DedupeEngineTest, RestoresReadOnlyFlipsLeftByAKilledRun) {
  ASSERT_OK(AddSubvolume(256, "snap", /*read_only=*/false, /*received=*/false));
  ReadOnlyFlip flip;
  flip.subvol_id = 256;
  flip.path = "snap";
  flip.flipped_at = clock_.Now();
  ASSERT_OK(index_->RecordReadOnlyFlip(flip));
  auto engine = Engine();
  ASSERT_OK(engine->RestorePendingReadOnlyFlips());
  EXPECT_TRUE(fs_.subvolume("/vol/snap").read_only);
  ASSERT_OK_AND_ASSIGN(std::vector<ReadOnlyFlip> pending, index_->PendingReadOnlyFlips());
  EXPECT_TRUE(pending.empty());
}

TEST_F(DedupeEngineTest, FilesStillWaitingAreNotHashedAndIdleSaysWhenToComeBack) {
  Add("a", Bytes(20000, 't'), 11, absl::Minutes(1));
  Add("b", Bytes(20000, 't'), 12, absl::Minutes(2));
  auto engine = Engine();
  ASSERT_OK_AND_ASSIGN(StepResult last, engine->RunUntilIdle());
  EXPECT_EQ(last.kind, StepResult::Kind::kIdle);
  EXPECT_EQ(fs_.bytes_read(), 0u);
  EXPECT_EQ(last.next_eligible, clock_.Now() + absl::Minutes(3));
  clock_.Advance(absl::Minutes(5));
  engine->RunUntilIdle().IgnoreError();
  EXPECT_TRUE(fs_.SharesAllExtents(P("a"), P("b")));
}

TEST_F(DedupeEngineTest, ReadErrorSkipsTheFileWithReason) {
  Add("a", Bytes(20000, 'k'), 11);
  Add("b", Bytes(20000, 'k'), 12);
  int64_t bad = Add("bad", Bytes(20000, 'k'), 13);
  fs_.FailReads(P("bad"));
  auto engine = Engine();
  Run(*engine);
  EXPECT_EQ(Get(bad).dedupe_state, DedupeState::kSkipped);
  EXPECT_EQ(Get(bad).skip_kind, SkipKind::kIoError);
  EXPECT_TRUE(fs_.SharesAllExtents(P("a"), P("b")));

  // The periodic dedupe reset gives the file another chance: readable again, it joins.
  fs_.HealReads(P("bad"));
  Run(*engine);
  EXPECT_EQ(Get(bad).dedupe_state, DedupeState::kSkipped) << "not before the reset";
  ASSERT_OK(index_->ResetDedupeStates());
  Run(*engine);
  EXPECT_EQ(Get(bad).dedupe_state, DedupeState::kDeduped);
  EXPECT_TRUE(fs_.SharesAllExtents(P("a"), P("bad")));
}

TEST_F(DedupeEngineTest, InterruptedHashingRecordsNothing) {
  int64_t a = Add("a", Bytes(3 << 20, 'j'), 11);
  Add("b", Bytes(3 << 20, 'j'), 12);
  EngineOptions options;
  bool stop = false;
  options.should_stop = [&] { return stop; };
  fs_.OnRead([&](const std::string&) { stop = true; });  // after the first 1 MiB read
  auto engine = Engine(options);
  ASSERT_OK_AND_ASSIGN(StepResult step, engine->Step());
  EXPECT_EQ(step.kind, StepResult::Kind::kInterrupted);
  EXPECT_EQ(Get(a).hash_state, HashState::kNone);
  EXPECT_EQ(Get(a).dedupe_state, DedupeState::kPending);
  // Once allowed to go on, the engine hashes and dedupes as usual.
  fs_.OnRead(nullptr);
  stop = false;
  Run(*engine);
  EXPECT_TRUE(fs_.SharesAllExtents(P("a"), P("b")));
}

TEST_F(DedupeEngineTest, BatchesAreCappedByBytes) {
  for (int i = 0; i < 5; ++i) Add(absl::StrCat("f", i), Bytes(20000, 'y'), 100 + i);
  EngineOptions options;
  options.max_batch_bytes = 45000;  // two 20000-byte destinations per call
  auto engine = Engine(options);
  Run(*engine);
  std::vector<size_t> sizes;
  for (const DedupeRequest& call : backend_.calls()) sizes.push_back(call.destination_paths.size());
  EXPECT_EQ(sizes, (std::vector<size_t>{2, 2}));
}

// Splits FakeFileAccess::access_log() lines into (verb, path, bytes).
struct Access {
  std::string verb;
  std::string path;
  uint64_t bytes = 0;
};
std::vector<Access> Accesses(const std::vector<std::string>& log) {
  std::vector<Access> out;
  for (const std::string& line : log) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    Access a;
    a.verb = f[0];
    a.path = f[1];
    if (f.size() > 2) EXPECT_TRUE(absl::SimpleAtoi(f[2], &a.bytes)) << line;
    out.push_back(a);
  }
  return out;
}

TEST_F(DedupeEngineTest, ReadsAheadTheNextFilesWithinTheWindow) {
  // Ten pairs of different sizes: files of later size groups are hinted while earlier
  // ones are hashed, never more than the window ahead, each before it is read.
  std::map<std::string, uint64_t> sizes;
  for (int i = 0; i < 10; ++i) {
    const uint64_t size = 10000 + i;
    for (int copy = 0; copy < 2; ++copy) {
      const std::string name = absl::StrCat("p", i, "-", copy);
      Add(name, Bytes(size, static_cast<char>('a' + i)), 100 + 2 * i + copy);
      sizes[P(name)] = size;
    }
  }
  EngineOptions options;
  options.prefetch_bytes = 45000;  // four or five files ahead
  auto engine = Engine(options);
  Run(*engine);

  std::map<std::string, uint64_t> hinted_unread;  // path -> bytes
  uint64_t unread = 0;
  uint64_t max_unread = 0;
  std::set<std::string> opened;
  for (const Access& a : Accesses(fs_.access_log())) {
    if (a.verb == "prefetch") {
      EXPECT_EQ(a.bytes, sizes[a.path]) << a.path << ": small files are hinted whole";
      EXPECT_FALSE(opened.count(a.path)) << a.path << " hinted after it was read";
      EXPECT_FALSE(hinted_unread.count(a.path)) << a.path << " hinted twice";
      hinted_unread[a.path] = a.bytes;
      unread += a.bytes;
      max_unread = std::max(max_unread, unread);
    } else {
      EXPECT_TRUE(hinted_unread.count(a.path)) << a.path << " read without a hint";
      unread -= hinted_unread[a.path];
      hinted_unread.erase(a.path);
      opened.insert(a.path);
    }
  }
  EXPECT_EQ(opened.size(), 20u);
  EXPECT_TRUE(hinted_unread.empty());
  // The window is filled up to its size; the last file hinted may pass it.
  EXPECT_GE(max_unread, 40000u);
  EXPECT_LT(max_unread, 45000u + 10010u);
  EXPECT_EQ(backend_.calls().size(), 10u);
}

TEST_F(DedupeEngineTest, ReadAheadHintsOnlyThePrefixWhereThePrefixStageComesFirst) {
  EngineOptions options;
  options.prefix_bytes = 4096;
  for (int i = 0; i < 3; ++i) {
    Add(absl::StrCat("big", i), Bytes(100000, 'q', 99990, absl::StrCat("#", i)), 30 + i);
  }
  auto engine = Engine(options);
  Run(*engine);
  int hints = 0;
  for (const Access& a : Accesses(fs_.access_log())) {
    if (a.verb != "prefetch") continue;
    ++hints;
    EXPECT_EQ(a.bytes, 4096u) << a.path;
  }
  EXPECT_EQ(hints, 3);
}

TEST_F(DedupeEngineTest, NoReadAheadWhenTurnedOff) {
  Add("a", Bytes(20000, 'r'), 11);
  Add("b", Bytes(20000, 'r'), 12);
  EngineOptions options;
  options.prefetch_bytes = 0;
  auto engine = Engine(options);
  Run(*engine);
  for (const std::string& line : fs_.access_log()) {
    EXPECT_FALSE(absl::StartsWith(line, "prefetch")) << line;
  }
  EXPECT_EQ(backend_.calls().size(), 1u);
}

TEST_F(DedupeEngineTest, BusyDestinationIsLeftPendingForTheNextPass) {
  Add("a", Bytes(20000, 'g'), 11, absl::Hours(2));
  int64_t b = Add("b", Bytes(20000, 'g'), 12);
  backend_.FailFor(P("b"), ErrnoToStatus(EAGAIN, "dedupe into b"));
  auto engine = Engine();
  std::vector<StepResult> steps = Run(*engine);
  EXPECT_EQ(Get(b).dedupe_state, DedupeState::kPending);
  EXPECT_EQ(engine->stats().files_retry_later, 1);
  for (const StepResult& step : steps) {  // a busy file is no progress (no busy loop)
    if (step.files_retry_later > 0) {
      EXPECT_EQ(step.kind, StepResult::Kind::kBusy);
    }
  }
  backend_.FailFor(P("b"), absl::OkStatus());
  Run(*engine);
  EXPECT_EQ(Get(b).dedupe_state, DedupeState::kDeduped);
}

TEST_F(DedupeEngineTest, WithoutDedupeAcrossOwnersOnlyFilesOfOneOwnerShareExtents) {
  config_.dedupe_across_owners = false;
  const std::string content = Bytes(20000, 'o');
  int64_t a1 = Add("a1", content, 11, absl::Hours(3));
  int64_t a2 = Add("a2", content, 12);
  int64_t b1 = Add("b1", content, 13, absl::Hours(2));
  int64_t b2 = Add("b2", content, 14);
  int64_t c = Add("c", content, 15);
  fs_.file(P("a1")).attrs.owner = 1000;
  fs_.file(P("a2")).attrs.owner = 1000;
  fs_.file(P("b1")).attrs.owner = 1001;
  fs_.file(P("b2")).attrs.owner = 1001;
  fs_.file(P("c")).attrs.owner = 1002;
  auto engine = Engine();
  Run(*engine);
  EXPECT_TRUE(fs_.SharesAllExtents(P("a1"), P("a2")));
  EXPECT_TRUE(fs_.SharesAllExtents(P("b1"), P("b2")));
  EXPECT_FALSE(fs_.SharesAllExtents(P("a1"), P("b1")));
  EXPECT_FALSE(fs_.SharesAllExtents(P("c"), P("a1")));
  EXPECT_FALSE(fs_.SharesAllExtents(P("c"), P("b1")));
  EXPECT_EQ(Get(a1).dedupe_state, DedupeState::kReference);
  EXPECT_EQ(Get(b1).dedupe_state, DedupeState::kReference);
  EXPECT_EQ(Get(a2).reference_id, a1);
  EXPECT_EQ(Get(b2).reference_id, b1);
  // c's copies all belong to others: not skipped, just nothing to share with for now.
  EXPECT_EQ(Get(c).dedupe_state, DedupeState::kUnique);
  for (const DedupeRequest& call : backend_.calls()) {
    const uint32_t owner = fs_.file(call.reference_path).attrs.owner;
    for (const std::string& d : call.destination_paths) EXPECT_EQ(fs_.file(d).attrs.owner, owner);
  }
  // A second pass changes nothing (two references of different owners are not "work").
  const size_t calls = backend_.calls().size();
  Run(*engine);
  EXPECT_EQ(backend_.calls().size(), calls);
  // A copy of c's own owner appears: c is deduped with it.
  int64_t c2 = Add("c2", content, 16);
  fs_.file(P("c2")).attrs.owner = 1002;
  Run(*engine);
  EXPECT_TRUE(fs_.SharesAllExtents(P("c"), P("c2")));
  EXPECT_NE(Get(c2).dedupe_state, DedupeState::kPending);
}

TEST_F(DedupeEngineTest, ByDefaultFilesOfDifferentOwnersShareExtents) {
  const std::string content = Bytes(20000, 'p');
  Add("a", content, 11, absl::Hours(3));
  Add("b", content, 12);
  fs_.file(P("a")).attrs.owner = 1000;
  fs_.file(P("b")).attrs.owner = 1001;
  auto engine = Engine();
  Run(*engine);
  EXPECT_TRUE(fs_.SharesAllExtents(P("a"), P("b")));
}

TEST_F(DedupeEngineTest, BackendThatFailsAsAWholeIsAVolumeErrorAndNoFileIsSkipped) {
  int64_t a = Add("a", Bytes(20000, 'w'), 11, absl::Hours(2));
  int64_t b = Add("b", Bytes(20000, 'w'), 12);
  backend_.FailEveryCall(
      BackendFailure(absl::StatusCode::kFailedPrecondition, "duperemove: invalid option"));
  auto engine = Engine();
  absl::StatusOr<StepResult> last = engine->RunUntilIdle();
  ASSERT_FALSE(last.ok());
  EXPECT_TRUE(IsBackendFailure(last.status())) << last.status();
  // Neither the reference nor the destination is blamed.
  EXPECT_EQ(Get(a).dedupe_state, DedupeState::kPending);
  EXPECT_EQ(Get(b).dedupe_state, DedupeState::kPending);
  EXPECT_EQ(engine->stats().files_skipped, 0);
  // Once the backend works again, the same group is deduped.
  backend_.FailEveryCall(absl::OkStatus());
  Run(*engine);
  EXPECT_EQ(Get(a).dedupe_state, DedupeState::kReference);
  EXPECT_EQ(Get(b).dedupe_state, DedupeState::kDeduped);
}

TEST_F(DedupeEngineTest, SnapshotCopiesOfManySameSizeFilesAreNeverRead) {
  const uint64_t size = 20000;
  ASSERT_OK(AddSubvolume(256, "live", false, false));
  for (int f = 0; f < 12; ++f) {
    Add(absl::StrCat("live/file", f), Bytes(size, static_cast<char>('A' + f)), 100 + f,
        absl::Hours(3), 256);
  }
  for (int snap = 0; snap < 3; ++snap) {
    ASSERT_OK(AddSubvolume(300 + snap, absl::StrCat("snap", snap), true, false));
    for (int f = 0; f < 12; ++f) {
      const std::string rel = absl::StrCat("snap", snap, "/file", f);
      fs_.AddFile(P(rel), "", 100 + f, 1100 + f);
      fs_.ShareExtents(P(rel), P(absl::StrCat("live/file", f)));
      Add(rel, Bytes(size, static_cast<char>('A' + f)), 100 + f, absl::Hours(2), 300 + snap);
    }
  }
  auto engine = Engine();
  Run(*engine);
  EXPECT_EQ(fs_.bytes_read(), 12 * size);  // the live files only
  EXPECT_EQ(engine->stats().hashes_copied, 36);
  EXPECT_TRUE(backend_.calls().empty());      // every copy already shares
  EXPECT_EQ(engine->stats().files_already_shared, 36);
}

TEST_F(DedupeEngineTest, AfterADedupeResetEverythingIsReverifiedWithoutReadsOrCalls) {
  const std::string content = Bytes(300000, 'x');
  std::vector<int64_t> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(Add(absl::StrCat("f", i), content, 10 + i));
  int64_t unique = Add("unique", Bytes(300000, 'x', 5, "other"), 30);
  auto engine = Engine();
  Run(*engine);
  ASSERT_EQ(Get(unique).dedupe_state, DedupeState::kUnique);
  const size_t calls = backend_.calls().size();
  const uint64_t read = fs_.bytes_read();

  ASSERT_OK(index_->ResetDedupeStates());
  Run(*engine);
  EXPECT_EQ(backend_.calls().size(), calls);
  EXPECT_EQ(fs_.bytes_read(), read);
  int references = 0;
  for (int64_t id : ids) {
    DedupeState state = Get(id).dedupe_state;
    EXPECT_TRUE(state == DedupeState::kDeduped || state == DedupeState::kReference) << id;
    references += state == DedupeState::kReference;
  }
  EXPECT_EQ(references, 1);
  EXPECT_EQ(Get(unique).dedupe_state, DedupeState::kUnique);
}

}  // namespace
}  // namespace btrdupd
