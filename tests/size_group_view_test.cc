// SizeGroupView answers what the planner's whole-group functions answer (core/planner.h),
// while rows change one at a time.

#include "core/size_group_view.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/planner.h"
#include "gtest/gtest.h"

namespace btrdupd {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

FileRecord Member(int64_t id, uint64_t ino, uint64_t size) {
  FileRecord f;
  f.id = id;
  f.subvol_id = 5;
  f.ino = ino;
  f.size = size;
  f.path = "f" + std::to_string(id);
  f.next_eligible = kNow - absl::Hours(1);
  return f;
}

// Hashes the group in the order both choose, giving member i the prefix `prefixes[i]`
// (a prefix task) or a full hash; checks they choose the same member every time.
TEST(SizeGroupViewTest, HashesInThePlannersOrder) {
  constexpr uint64_t kPrefix = 1024;
  const std::vector<std::string> prefixes = {"a", "b", "a", "c", "b", "d"};
  std::vector<FileRecord> rows;
  for (int i = 0; i < 6; ++i) rows.push_back(Member(10 + i, 100 + i, 4 * kPrefix));
  SizeGroupView view;
  view.Reset(rows[0].size, rows);
  std::vector<FileRecord> plain = view.members();
  absl::flat_hash_set<int64_t> attempted;
  for (int round = 0; round < 20; ++round) {
    std::optional<HashTask> expected = NextHashTask(plain, kNow, kPrefix, attempted, {});
    std::optional<HashTask> got = view.NextHashTask(kNow, kPrefix, attempted, {});
    ASSERT_EQ(expected.has_value(), got.has_value()) << "round " << round;
    if (!expected.has_value()) break;
    EXPECT_EQ(expected->member, got->member) << "round " << round;
    EXPECT_EQ(expected->prefix, got->prefix) << "round " << round;
    FileRecord row = plain[expected->member];
    if (expected->prefix) {
      row.hash_state = HashState::kPrefix;
      row.hash = prefixes[expected->member];
    } else {
      row.hash_state = HashState::kFull;
      row.hash = "full-" + prefixes[expected->member];
    }
    plain[expected->member] = row;
    view.Replace(expected->member, row);
  }
  // Prefix twins (a, b) were read in full; the lonely prefixes (c, d) were not.
  EXPECT_EQ(view.members()[0].hash_state, HashState::kFull);
  EXPECT_EQ(view.members()[1].hash_state, HashState::kFull);
  EXPECT_EQ(view.members()[3].hash_state, HashState::kPrefix);
  EXPECT_EQ(view.members()[5].hash_state, HashState::kPrefix);
}

TEST(SizeGroupViewTest, FullHashGroupsSettleOncePerPass) {
  std::vector<FileRecord> rows;
  for (int i = 0; i < 6; ++i) {
    FileRecord f = Member(1 + i, 50 + i, 9000);
    f.hash_state = HashState::kFull;
    f.hash = i % 3 == 2 ? "lonely" + std::to_string(i) : (i % 3 == 0 ? "x" : "y");
    rows.push_back(f);
  }
  SizeGroupView view;
  view.Reset(9000, rows);
  ASSERT_EQ(view.OpenGroupsBegin(kNow), 0u);
  EXPECT_EQ(view.groups(), FullHashGroups(view.members(), kNow));
  ASSERT_EQ(view.groups().size(), 2u);
  view.SettleGroup(0);
  EXPECT_EQ(view.OpenGroupsBegin(kNow), 1u);
  view.SettleGroup(1);
  EXPECT_EQ(view.OpenGroupsBegin(kNow), 2u);

  // A hash that changes regroups, and every group is open again.
  FileRecord changed = view.members()[1];
  changed.hash = "x";
  view.Replace(1, changed);
  EXPECT_EQ(view.OpenGroupsBegin(kNow), 0u);
  EXPECT_EQ(view.groups(), FullHashGroups(view.members(), kNow));
}

TEST(SizeGroupViewTest, PrefixTwinsCountInodesNotRows) {
  std::vector<FileRecord> rows = {Member(1, 7, 9000), Member(2, 7, 9000), Member(3, 8, 9000)};
  for (FileRecord& f : rows) {
    f.hash_state = HashState::kPrefix;
    f.hash = "p";
  }
  rows[2].hash = "q";
  SizeGroupView view;
  view.Reset(9000, rows);
  EXPECT_EQ(view.inodes(), 2u);
  // Two rows of inode 7 (hard links) are not twins of each other.
  EXPECT_FALSE(view.PrefixHasOtherInode("p", view.members()[0]));
  EXPECT_TRUE(view.PrefixHasOtherInode("p", view.members()[2]));
  FileRecord row = view.members()[2];
  row.hash = "p";
  view.Replace(2, row);
  EXPECT_TRUE(view.PrefixHasOtherInode("p", view.members()[0]));
}

}  // namespace
}  // namespace btrdupd
