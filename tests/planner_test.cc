// core/planner: which member to hash next, hash groups, reference choice, batch sizes,
// and the plan of one group (reference, hard links, refusals) - all without I/O.

#include "core/planner.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace btrdupd {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

FileRecord File(int64_t id, uint64_t ino, uint64_t size, HashState state = HashState::kNone,
                std::string hash = "") {
  FileRecord f;
  f.id = id;
  f.subvol_id = 5;
  f.ino = ino;
  f.size = size;
  f.hash_state = state;
  f.hash = hash;
  f.next_eligible = kNow - absl::Minutes(1);
  return f;
}

TEST(PlannerTest, SmallFilesAreHashedWhole) {
  std::vector<FileRecord> m = {File(1, 10, 20000), File(2, 11, 20000)};
  auto task = NextHashTask(m, kNow, 65536, {});
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->member, 0u);
  EXPECT_FALSE(task->prefix);
}

TEST(PlannerTest, LargeFilesGetAPrefixFirstAndOnlyMatchingPrefixesGoOn) {
  const uint64_t size = 1 << 20;
  std::vector<FileRecord> m = {File(1, 10, size), File(2, 11, size), File(3, 12, size)};
  auto task = NextHashTask(m, kNow, 65536, {});
  ASSERT_TRUE(task.has_value());
  EXPECT_TRUE(task->prefix);

  // A pair: the first is read whole, the second is then prefix-checked against it.
  m = {File(1, 10, size), File(2, 11, size)};
  task = NextHashTask(m, kNow, 65536, {});
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->member, 0u);
  EXPECT_FALSE(task->prefix);
  m[0].hash_state = HashState::kFull;
  m[0].hash = "F";
  task = NextHashTask(m, kNow, 65536, {});
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->member, 1u);
  EXPECT_TRUE(task->prefix);

  m = {File(1, 10, size, HashState::kPrefix, "P"), File(2, 11, size, HashState::kPrefix, "Q"),
       File(3, 12, size, HashState::kPrefix, "P")};
  task = NextHashTask(m, kNow, 65536, {});
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(m[task->member].id, 1);
  EXPECT_FALSE(task->prefix);

  m = {File(1, 10, size, HashState::kPrefix, "P"), File(2, 11, size, HashState::kPrefix, "Q")};
  EXPECT_FALSE(NextHashTask(m, kNow, 65536, {}).has_value());  // decoys stay prefix-only
}

TEST(PlannerTest, NothingIsHashedForOneInodeOrWaitingOrSkippedFiles) {
  std::vector<FileRecord> links = {File(1, 10, 20000), File(2, 10, 20000)};
  EXPECT_FALSE(NextHashTask(links, kNow, 65536, {}).has_value());

  std::vector<FileRecord> m = {File(1, 10, 20000), File(2, 11, 20000)};
  m[0].next_eligible = kNow + absl::Minutes(1);
  m[1].dedupe_state = DedupeState::kSkipped;
  EXPECT_FALSE(NextHashTask(m, kNow, 65536, {}).has_value());

  std::vector<FileRecord> tried = {File(1, 10, 20000), File(2, 11, 20000)};
  absl::flat_hash_set<int64_t> attempted = {1, 2};
  EXPECT_FALSE(NextHashTask(tried, kNow, 65536, attempted).has_value());
}

TEST(PlannerTest, FullHashGroupsNeedTwoInodes) {
  std::vector<FileRecord> m = {
      File(1, 10, 9000, HashState::kFull, "A"), File(2, 10, 9000, HashState::kFull, "A"),
      File(3, 11, 9000, HashState::kFull, "B"), File(4, 12, 9000, HashState::kFull, "B"),
      File(5, 13, 9000, HashState::kPrefix, "B")};
  auto groups = FullHashGroups(m, kNow);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0], (std::vector<size_t>{2, 3}));
}

ReferenceCandidate Candidate(int64_t id, int age_hours, bool shared = false,
                             bool can_be_destination = true, bool can_be_source = true) {
  ReferenceCandidate c;
  c.id = id;
  c.first_seen = kNow - absl::Hours(age_hours);
  c.has_shared_extents = shared;
  c.can_be_destination = can_be_destination;
  c.can_be_source = can_be_source;
  return c;
}

TEST(PlannerTest, ReferencePrefersSharingThenOldestThenLowestId) {
  EXPECT_EQ(ChooseReference({Candidate(1, 1), Candidate(2, 5), Candidate(3, 3)}), 1u);
  EXPECT_EQ(ChooseReference({Candidate(1, 9), Candidate(2, 1, true), Candidate(3, 2, true)}),
            2u);
  EXPECT_EQ(ChooseReference({Candidate(7, 2), Candidate(4, 2)}), 1u);
}

TEST(PlannerTest, ReferencePrefersCopiesThatCannotBeDestinationsAndNeverASwapFile) {
  EXPECT_EQ(ChooseReference({Candidate(1, 9, true), Candidate(2, 1, false, false)}), 1u);
  EXPECT_EQ(ChooseReference({Candidate(1, 9, true, true, false), Candidate(2, 1)}), 1u);
  EXPECT_FALSE(ChooseReference({Candidate(1, 9, false, true, false)}).has_value());
}

TEST(PlannerTest, DestinationsPerCallFollowsGroupSize) {
  VolumeConfig config;  // max_dedup_batch 5, large_group_threshold 10, dedup_batch_size 50
  EXPECT_EQ(DestinationsPerCall(2, config), 5);
  EXPECT_EQ(DestinationsPerCall(9, config), 5);
  EXPECT_EQ(DestinationsPerCall(10, config), 50);
  EXPECT_EQ(DestinationsPerCall(401, config), 50);
  config.max_dedup_batch = 0;
  EXPECT_EQ(DestinationsPerCall(2, config), 1);
}

TEST(PlannerTest, BatchLimitCapsTheBytesOfOneCall) {
  VolumeConfig config;  // max_dedup_batch 5
  EXPECT_EQ(BatchLimit(2, 1 << 20, config, uint64_t{256} << 20), 5);
  EXPECT_EQ(BatchLimit(2, 100 << 20, config, uint64_t{256} << 20), 2);
  EXPECT_EQ(BatchLimit(2, 300 << 20, config, uint64_t{256} << 20), 1);
  EXPECT_EQ(BatchLimit(2, 0, config, uint64_t{256} << 20), 5);
}

// A (size, hash) group member in a given dedupe state.
FileRecord Member(int64_t id, uint64_t ino, DedupeState state, int64_t reference_id = 0) {
  FileRecord f = File(id, ino, 1 << 20, HashState::kFull, "H");
  f.dedupe_state = state;
  f.reference_id = reference_id;
  f.first_seen = kNow - absl::Hours(100 - id);  // lower id: older
  return f;
}

std::function<bool(size_t)> NoSharing() {
  return [](size_t) { return false; };
}

TEST(PlannerTest, GroupHasWorkOnlyWhenSomethingIsUnsettled) {
  const absl::flat_hash_set<int64_t> none;
  std::vector<FileRecord> settled = {Member(1, 10, DedupeState::kReference),
                                     Member(2, 11, DedupeState::kDeduped, 1)};
  EXPECT_FALSE(GroupHasWork(RefsTo(settled), none, true));
  std::vector<FileRecord> pending = settled;
  pending.push_back(Member(3, 12, DedupeState::kPending));
  EXPECT_TRUE(GroupHasWork(RefsTo(pending), none, true));
  EXPECT_FALSE(GroupHasWork(RefsTo(pending), {3}, true));
  // Deduped against a reference that left the group.
  std::vector<FileRecord> orphan = {Member(1, 10, DedupeState::kDeduped, 9),
                                    Member(2, 11, DedupeState::kDeduped, 9)};
  EXPECT_TRUE(GroupHasWork(RefsTo(orphan), none, true));
  // Two references merge only across owners.
  std::vector<FileRecord> two = {Member(1, 10, DedupeState::kReference),
                                 Member(2, 11, DedupeState::kReference)};
  EXPECT_TRUE(GroupHasWork(RefsTo(two), none, true));
  EXPECT_FALSE(GroupHasWork(RefsTo(two), none, false));
}

TEST(PlannerTest, RememberedReferenceIsKept) {
  std::vector<FileRecord> m = {Member(1, 10, DedupeState::kPending),
                               Member(2, 11, DedupeState::kReference),
                               Member(3, 12, DedupeState::kPending)};
  std::vector<MemberFacts> facts(3);
  int asked = 0;
  auto choice = PlanReference(RefsTo(m), facts, {}, [&](size_t) { return ++asked, false; });
  ASSERT_TRUE(choice.has_value());
  EXPECT_EQ(choice->member, 1u);
  EXPECT_TRUE(choice->remembered);
  EXPECT_EQ(asked, 0);  // no FIEMAP when the reference is remembered
}

TEST(PlannerTest, RememberedReferenceGivesWayToACopyThatCannotBeADestination) {
  std::vector<FileRecord> m = {Member(1, 10, DedupeState::kReference),
                               Member(2, 11, DedupeState::kDeduped, 1),
                               Member(3, 12, DedupeState::kPending)};
  std::vector<MemberFacts> facts(3);
  facts[2].received_snapshot = true;  // arrived later in a received snapshot
  auto choice = PlanReference(RefsTo(m), facts, {}, NoSharing());
  ASSERT_TRUE(choice.has_value());
  EXPECT_EQ(choice->member, 2u);
  EXPECT_FALSE(choice->remembered);
}

TEST(PlannerTest, RememberedReferenceThatCannotBeADestinationStays) {
  std::vector<FileRecord> m = {Member(1, 10, DedupeState::kReference),
                               Member(2, 11, DedupeState::kPending)};
  std::vector<MemberFacts> facts(2);
  facts[0].immutable = true;
  facts[1].received_snapshot = true;
  auto choice = PlanReference(RefsTo(m), facts, {}, NoSharing());
  ASSERT_TRUE(choice.has_value());
  EXPECT_EQ(choice->member, 0u);
  EXPECT_TRUE(choice->remembered);
}

TEST(PlannerTest, ASwapFileIsNeverTheReference) {
  std::vector<FileRecord> m = {Member(1, 10, DedupeState::kReference),
                               Member(2, 11, DedupeState::kPending)};
  std::vector<MemberFacts> facts(2);
  facts[0].swapfile = true;
  auto choice = PlanReference(RefsTo(m), facts, {}, NoSharing());
  ASSERT_TRUE(choice.has_value());
  EXPECT_EQ(choice->member, 1u);
  EXPECT_FALSE(choice->remembered);
  facts[1].swapfile = true;
  EXPECT_FALSE(PlanReference(RefsTo(m), facts, {}, NoSharing()).has_value());
}

TEST(PlannerTest, NewReferenceIsTheMemberAlreadySharingExtents) {
  std::vector<FileRecord> m = {Member(1, 10, DedupeState::kPending),
                               Member(2, 11, DedupeState::kPending),
                               Member(3, 12, DedupeState::kPending)};
  std::vector<MemberFacts> facts(3);
  // members[0] is the oldest but shares nothing; members[1] (id 2) shares but was
  // handled earlier in this pass.
  auto choice = PlanReference(RefsTo(m), facts, {2}, [](size_t i) { return i >= 1; });
  ASSERT_TRUE(choice.has_value());
  EXPECT_EQ(choice->member, 2u);
}

TEST(PlannerTest, DestinationsOneNamePerInodeTheOtherNamesAreHardLinks) {
  std::vector<FileRecord> m = {Member(1, 10, DedupeState::kReference),
                               Member(2, 10, DedupeState::kPending),  // link of the reference
                               Member(3, 11, DedupeState::kPending),
                               Member(4, 11, DedupeState::kPending),  // link of member 3
                               Member(5, 12, DedupeState::kDeduped, 1),
                               Member(6, 12, DedupeState::kPending)};  // link of a done one
  std::vector<MemberFacts> facts(m.size());
  std::vector<InodePlan> plan = PlanDestinations(RefsTo(m), facts, 0, {});
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].hard_links, (std::vector<size_t>{1}));
  EXPECT_EQ(plan[0].link_of, 0u);
  EXPECT_FALSE(plan[0].destination.has_value());
  EXPECT_EQ(plan[1].destination, 2u);
  EXPECT_EQ(plan[1].hard_links, (std::vector<size_t>{3}));
  EXPECT_EQ(plan[1].link_of, 2u);
  EXPECT_FALSE(plan[1].refusal.has_value());
  EXPECT_EQ(plan[2].hard_links, (std::vector<size_t>{5}));
  EXPECT_EQ(plan[2].link_of, 4u);
  EXPECT_FALSE(plan[2].destination.has_value());
}

TEST(PlannerTest, DestinationsAreRefusedByAttributesFirstThenReceivedSnapshot) {
  std::vector<FileRecord> m = {Member(1, 10, DedupeState::kReference),
                               Member(2, 11, DedupeState::kPending),
                               Member(3, 12, DedupeState::kPending),
                               Member(4, 13, DedupeState::kPending),
                               Member(5, 14, DedupeState::kPending),
                               Member(6, 15, DedupeState::kDeduped, 1),  // settled
                               Member(7, 16, DedupeState::kPending)};    // attempted
  std::vector<MemberFacts> facts(m.size());
  facts[1].swapfile = true;
  facts[2].immutable = true;
  facts[2].received_snapshot = true;
  facts[3].append_only = true;
  facts[4].received_snapshot = true;
  std::vector<InodePlan> plan = PlanDestinations(RefsTo(m), facts, 0, {7});
  ASSERT_EQ(plan.size(), 4u);
  EXPECT_EQ(plan[0].refusal, SkipKind::kSwapfile);
  EXPECT_EQ(plan[1].refusal, SkipKind::kImmutable);
  EXPECT_EQ(plan[2].refusal, SkipKind::kAppendOnly);
  EXPECT_EQ(plan[3].refusal, SkipKind::kReceivedSnapshot);
  EXPECT_EQ(plan[3].destination, 4u);
}

}  // namespace
}  // namespace btrdupd
