// FreedBytes (core/freed_space.h): which of the destinations' old extents a dedupe frees.

#include "core/freed_space.h"

#include <gtest/gtest.h>

#include <vector>

namespace btrdupd {
namespace {

HeldExtent Own(uint64_t bytenr, uint64_t bytes) {
  HeldExtent e;
  e.bytenr = bytenr;
  e.disk_bytes = bytes;
  return e;
}

HeldExtent Shared(uint64_t bytenr, uint64_t bytes, std::vector<InodeKey> referrers) {
  HeldExtent e = Own(bytenr, bytes);
  e.shared = true;
  e.referrers = std::move(referrers);
  return e;
}

TEST(FreedBytesTest, UnsharedExtentsAreFreed) {
  EXPECT_EQ(FreedBytes({{{5, 257}, {Own(1000, 4096), Own(9000, 8192)}}}), 12288u);
}

TEST(FreedBytesTest, ExtentAlsoHeldBySomethingElseIsNotFreed) {
  // Held by a snapshot's copy (subvolume 256) that is not deduped.
  EXPECT_EQ(FreedBytes({{{5, 257}, {Shared(1000, 4096, {{5, 257}, {256, 257}})}}}), 0u);
}

TEST(FreedBytesTest, ExtentSharedOnlyAmongDedupedHoldersIsFreedOnce) {
  const HeldExtent e = Shared(1000, 4096, {{5, 257}, {256, 257}});
  EXPECT_EQ(FreedBytes({{{5, 257}, {e}}, {{256, 257}, {e}}}), 4096u);
}

TEST(FreedBytesTest, SharedExtentWithUnknownReferrersIsNotFreed) {
  HeldExtent e = Own(1000, 4096);
  e.shared = true;  // referrers unknown
  EXPECT_EQ(FreedBytes({{{5, 257}, {e}}}), 0u);
}

TEST(FreedBytesTest, ExtentReferredToTwiceByTheFileItselfIsFreed) {
  EXPECT_EQ(FreedBytes({{{5, 257}, {Shared(1000, 4096, {{5, 257}, {5, 257}})}}}), 4096u);
}

}  // namespace
}  // namespace btrdupd
