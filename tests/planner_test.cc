// core/planner: which member to hash next, hash groups, reference choice, batch sizes.

#include "core/planner.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace btrdupd
