// Groups larger than one batch (core/group_cursor.h): the dedupe engine plans a group
// once per pass and hands out its destinations batch by batch, keeping the reference
// and every planner rule across batches. On the real SQLite index with a fake filesystem
// and backend (tests/testing/fake_file_access.h); the work it saves is counted in
// tests/size_group_scaling_test.cc.

#include "core/group_cursor.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/dedupe_engine.h"
#include "core/index.h"
#include "tests/testing/fake_file_access.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using testing::FakeDedupeBackend;
using testing::FakeFileAccess;

constexpr char kRoot[] = "/vol";
constexpr uint64_t kTop = 5;
constexpr uint64_t kSize = 20000;

class GroupCursorTest : public ::testing::Test {
 protected:
  GroupCursorTest() : clock_(absl::FromUnixSeconds(1700000000)), backend_(&fs_) {
    // Groups of 4 inodes and more are "large": 3 destinations per backend call.
    config_.large_group_threshold = 4;
    config_.dedup_batch_size = 3;
  }

  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    const std::string dir = absl::StrCat(
        tmp ? tmp : "/tmp", "/group_cursor_test_",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_", getpid());
    ASSERT_EQ(system(absl::StrCat("rm -rf '", dir, "' && mkdir -p '", dir, "'").c_str()), 0);
    ASSERT_OK_AND_ASSIGN(index_, VolumeIndex::Open(dir + "/btrdupd.db"));
    SubvolumeRecord top;
    top.id = kTop;
    ASSERT_OK(index_->UpsertSubvolume(top));
  }

  std::string P(const std::string& rel) { return absl::StrCat(kRoot, "/", rel); }

  // A read-only received snapshot "recv" (subvolume 257): never a dedupe destination.
  absl::Status AddReceivedSnapshot() {
    SubvolumeRecord s;
    s.id = 257;
    s.path = "recv";
    s.uuid = "uuid-257";
    s.read_only = true;
    s.received_uuid = "recv";
    fs_.AddSubvolume(P("recv"), SubvolumeFlags{true, true, false});
    return index_->UpsertSubvolume(s);
  }

  // A file of kSize bytes of `fill` in the fake filesystem and in the index, observed
  // `age` ago (eligible). A name of an inode already there is a hard link to it.
  int64_t Add(const std::string& rel, char fill, uint64_t ino,
              absl::Duration age = absl::Hours(1), uint64_t subvol = kTop,
              const std::string& link_of = "") {
    if (link_of.empty()) {
      fs_.AddFile(P(rel), std::string(kSize, fill), ino, 1000 + static_cast<int64_t>(ino));
    } else {
      fs_.AddFile(P(rel), std::string(kSize, fill), ino, fs_.file(P(link_of)).mtime_ns);
      fs_.ShareExtents(P(rel), P(link_of));
    }
    const size_t slash = rel.rfind('/');
    const std::string dir = slash == std::string::npos ? "" : rel.substr(0, slash);
    const std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
    absl::StatusOr<int64_t> dir_id = index_->EnsureDir(dir, subvol, 256 + dir.size());
    EXPECT_OK(dir_id);
    FileObservation seen;
    seen.subvol_id = subvol;
    seen.ino = ino;
    seen.size = kSize;
    seen.mtime_ns = fs_.file(P(rel)).mtime_ns;
    seen.generation = 7;
    absl::StatusOr<int64_t> id = index_->ObserveFile(*dir_id, name, seen, clock_.Now() - age,
                                                     ToStabilityPolicy(config_));
    EXPECT_OK(id);
    return id.ok() ? *id : 0;
  }

  std::unique_ptr<DedupeEngine> Engine(EngineOptions options = EngineOptions()) {
    options.prefetch_bytes = 0;
    return std::make_unique<DedupeEngine>(index_.get(), &fs_, &backend_, config_, &clock_,
                                          kRoot, options);
  }

  std::vector<StepResult> Run(DedupeEngine& engine) {
    std::vector<StepResult> steps;
    EXPECT_OK(engine.RunUntilIdle([&](const StepResult& r) { steps.push_back(r); }));
    return steps;
  }

  FileRecord Get(int64_t id) {
    absl::StatusOr<std::optional<FileRecord>> f = index_->GetFile(id);
    EXPECT_TRUE(f.ok() && f->has_value()) << "no file " << id;
    return f.ok() && f->has_value() ? **f : FileRecord();
  }

  // Every destination of every backend call so far, checking none comes twice.
  std::set<std::string> Destinations() {
    std::set<std::string> all;
    for (const DedupeRequest& call : backend_.calls()) {
      for (const std::string& dest : call.destination_paths) {
        EXPECT_TRUE(all.insert(dest).second) << dest << " handed out twice";
      }
    }
    return all;
  }

  FakeClock clock_;
  FakeFileAccess fs_;
  FakeDedupeBackend backend_;
  VolumeConfig config_;
  std::unique_ptr<VolumeIndex> index_;
};

TEST_F(GroupCursorTest, ALargeGroupIsDedupedInBatchesAgainstOneReference) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 10; ++i) {
    ids.push_back(Add(absl::StrCat("f", i), 'a', 100 + i, absl::Hours(i == 0 ? 5 : 1)));
  }
  auto engine = Engine();
  Run(*engine);
  ASSERT_EQ(backend_.calls().size(), 3u);
  for (const DedupeRequest& call : backend_.calls()) {
    EXPECT_EQ(call.reference_path, P("f0"));
    EXPECT_EQ(call.destination_paths.size(), 3u);
  }
  EXPECT_EQ(Destinations().size(), 9u);
  EXPECT_EQ(Get(ids[0]).dedupe_state, DedupeState::kReference);
  for (int i = 1; i < 10; ++i) {
    EXPECT_EQ(Get(ids[i]).dedupe_state, DedupeState::kDeduped) << i;
    EXPECT_EQ(Get(ids[i]).reference_id, ids[0]) << i;
  }
  EXPECT_EQ(engine->stats().files_deduped, 9);
}

TEST_F(GroupCursorTest, HardLinksAndRefusalsKeepTheirRulesAcrossBatches) {
  ASSERT_OK(AddReceivedSnapshot());
  std::vector<int64_t> plain;
  for (int i = 0; i < 8; ++i) plain.push_back(Add(absl::StrCat("f", i), 'h', 100 + i));
  const int64_t link = Add("f3_link", 'h', 103, absl::Hours(1), kTop, "f3");
  const int64_t frozen = Add("frozen", 'h', 200);
  fs_.file(P("frozen")).attrs.immutable = true;
  // Oldest: of the two that cannot be destinations, it is the reference.
  const int64_t received = Add("recv/f", 'h', 300, absl::Hours(5), 257);
  auto engine = Engine();
  Run(*engine);
  // The received copy can never be a destination: it is the reference.
  EXPECT_EQ(Get(received).dedupe_state, DedupeState::kReference);
  const std::set<std::string> dests = Destinations();
  EXPECT_EQ(dests.count(P("recv/f")), 0u);
  EXPECT_EQ(dests.count(P("frozen")), 0u);
  EXPECT_EQ(dests.count(P("f3_link")) + dests.count(P("f3")), 1u);  // one name per inode
  EXPECT_EQ(Get(link).skip_kind == SkipKind::kHardLink ||
                Get(plain[3]).skip_kind == SkipKind::kHardLink,
            true);
  // frozen cannot be changed (and is not the reference: the received copy is older).
  EXPECT_EQ(Get(frozen).dedupe_state, DedupeState::kSkipped);
  EXPECT_EQ(Get(frozen).skip_kind, SkipKind::kImmutable);
  for (int i = 0; i < 8; ++i) {
    if (i == 3) continue;
    EXPECT_EQ(Get(plain[i]).dedupe_state, DedupeState::kDeduped) << i;
    EXPECT_TRUE(fs_.SharesAllExtents(P(absl::StrCat("f", i)), P("recv/f"))) << i;
  }
  EXPECT_GE(backend_.calls().size(), 3u);  // 8 destinations, 3 per call
}

TEST_F(GroupCursorTest, ARememberedReferenceGivesWayToAReceivedCopyThatArrivedLater) {
  std::vector<std::string> names;
  for (int i = 0; i < 6; ++i) {
    names.push_back(absl::StrCat("f", i));
    Add(names.back(), 'g', 100 + i, absl::Hours(i == 0 ? 5 : 1));
  }
  auto engine = Engine();
  Run(*engine);
  ASSERT_FALSE(backend_.calls().empty());
  const size_t first_pass_calls = backend_.calls().size();

  ASSERT_OK(AddReceivedSnapshot());
  const int64_t received = Add("recv/f", 'g', 300, absl::Hours(1), 257);
  for (int i = 6; i < 9; ++i) {
    names.push_back(absl::StrCat("f", i));
    Add(names.back(), 'g', 100 + i);
  }
  Run(*engine);
  EXPECT_EQ(Get(received).dedupe_state, DedupeState::kReference);
  std::set<std::string> second;
  for (size_t c = first_pass_calls; c < backend_.calls().size(); ++c) {
    const DedupeRequest& call = backend_.calls()[c];
    EXPECT_EQ(call.reference_path, P("recv/f"));
    EXPECT_LE(call.destination_paths.size(), 3u);
    for (const std::string& dest : call.destination_paths) {
      EXPECT_TRUE(second.insert(dest).second) << dest << " handed out twice";
    }
  }
  EXPECT_EQ(second.size(), names.size());  // every other copy, once
  for (const std::string& name : names) {
    EXPECT_TRUE(fs_.SharesAllExtents(P(name), P("recv/f"))) << name;
  }
}

TEST_F(GroupCursorTest, AReferenceLostMidGroupGivesWayAndTheRestShareWithTheNewOne) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 10; ++i) {
    ids.push_back(Add(absl::StrCat("f", i), 'v', 100 + i, absl::Hours(10 - i)));
  }
  // f0 (the oldest) is the reference; it vanishes before the second batch (f4, f5, f6).
  backend_.BeforeCall([&](const DedupeRequest&) {
    if (backend_.calls().size() == 2 && fs_.Exists(P("f0"))) fs_.Remove(P("f0"));
  });
  auto engine = Engine();
  Run(*engine);
  EXPECT_EQ(engine->stats().files_removed, 1);
  // The oldest member not handled in this pass takes over, and the rest of the group is
  // deduped against it in the same pass.
  EXPECT_EQ(Get(ids[4]).dedupe_state, DedupeState::kReference);
  for (int i = 5; i < 10; ++i) {
    EXPECT_EQ(Get(ids[i]).dedupe_state, DedupeState::kDeduped) << i;
    EXPECT_EQ(Get(ids[i]).reference_id, ids[4]) << i;
  }
  // The first batch lost its reference (waiting again): it joins in the next pass.
  Run(*engine);
  for (int i = 1; i < 10; ++i) {
    EXPECT_TRUE(fs_.SharesAllExtents(P(absl::StrCat("f", i)), P("f4"))) << i;
    if (i != 4) EXPECT_EQ(Get(ids[i]).reference_id, ids[4]) << i;
  }
}

TEST_F(GroupCursorTest, EachOwnersCopiesAreDedupedInBatchesOfTheirOwn) {
  config_.dedupe_across_owners = false;
  for (int i = 0; i < 10; ++i) {
    Add(absl::StrCat("f", i), 'o', 100 + i);
    fs_.file(P(absl::StrCat("f", i))).attrs.owner = i % 2 == 0 ? 1000 : 1001;
  }
  auto engine = Engine();
  Run(*engine);
  EXPECT_EQ(Destinations().size(), 8u);  // 5 copies of each owner: 4 destinations each
  for (const DedupeRequest& call : backend_.calls()) {
    EXPECT_LE(call.destination_paths.size(), 3u);
  }
  for (int i = 2; i < 10; ++i) {
    EXPECT_TRUE(fs_.SharesAllExtents(P(absl::StrCat("f", i)), P(absl::StrCat("f", i % 2))))
        << i;
  }
  EXPECT_FALSE(fs_.SharesAllExtents(P("f0"), P("f1")));
}

TEST_F(GroupCursorTest, ADryRunPlansTheWholeGroupInOneStep) {
  for (int i = 0; i < 10; ++i) Add(absl::StrCat("f", i), 'd', 100 + i);
  EngineOptions options;
  options.dry_run = true;
  auto engine = Engine(options);
  int planned = 0;
  for (const StepResult& step : Run(*engine)) {
    if (step.kind != StepResult::Kind::kPlannedGroup) continue;
    ++planned;
    ASSERT_TRUE(step.planned.has_value());
    EXPECT_EQ(step.planned->destination_paths.size(), 9u);
  }
  EXPECT_EQ(planned, 1);
  EXPECT_TRUE(backend_.calls().empty());
}

// The plan itself: members that left the group are not planned, and positions are the
// view's.
TEST(GroupCursorPlanTest, PlansOnlyMembersStillInTheGroupInViewPositions) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  std::vector<FileRecord> rows(4);
  for (int i = 0; i < 4; ++i) {
    rows[i].id = 10 + i;
    rows[i].ino = 100 + i;
    rows[i].subvol_id = kTop;
    rows[i].hash_state = HashState::kFull;
    rows[i].hash = "h";
    rows[i].first_seen = now - absl::Hours(10 - i);
    rows[i].next_eligible = now - absl::Hours(1);
  }
  rows[0].hash_state = HashState::kNone;  // invalidated since the group was built
  rows[0].hash.clear();
  GroupPartition part;
  part.members = {0, 1, 2, 3};
  part.facts.resize(4);
  part.inodes = 4;
  GroupCursor cursor(1, 1, "h", {});
  EXPECT_EQ(cursor.Plan(part, rows, now, {}, [](size_t) { return false; }), 4u);
  ASSERT_TRUE(part.planned);
  EXPECT_FALSE(part.done);
  EXPECT_EQ(part.reference, 1u);  // the oldest still in the group
  ASSERT_EQ(part.plan.size(), 2u);
  EXPECT_EQ(part.plan[0].destination, std::optional<size_t>(2));
  EXPECT_EQ(part.plan[1].destination, std::optional<size_t>(3));
  EXPECT_TRUE(cursor.ReferenceUsable(part, rows, now, {}));
  EXPECT_FALSE(cursor.ReferenceUsable(part, rows, now, {11}));
  EXPECT_FALSE(cursor.StillNeeded(2, rows, rows[1].id, now, {12}));
  rows[2].dedupe_state = DedupeState::kDeduped;
  rows[2].reference_id = rows[1].id;
  EXPECT_FALSE(cursor.StillNeeded(2, rows, rows[1].id, now, {}));
  EXPECT_TRUE(cursor.StillNeeded(3, rows, rows[1].id, now, {}));
}

}  // namespace
}  // namespace btrdupd
