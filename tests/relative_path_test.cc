#include "core/relative_path.h"

#include "gtest/gtest.h"

namespace btrdupd {
namespace {

TEST(RelativePathTest, PathBelowIsTheRestAfterBaseAndItsSlash) {
  EXPECT_EQ(PathBelow("snaps/1/a/b", "snaps/1"), "a/b");
  EXPECT_EQ(PathBelow("a/b", ""), "a/b");
}

TEST(RelativePathTest, PathBelowRefusesTheBaseItselfAndNamesThatOnlyStartAlike) {
  EXPECT_EQ(PathBelow("snaps/1", "snaps/1"), std::nullopt);
  EXPECT_EQ(PathBelow("snaps/10/a", "snaps/1"), std::nullopt);
  EXPECT_EQ(PathBelow("other/a", "snaps/1"), std::nullopt);
}

TEST(RelativePathTest, JoinPathPutsOneSlashOnlyBetweenTwoParts) {
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
  EXPECT_EQ(JoinPath("a", ""), "a");
}

}  // namespace
}  // namespace btrdupd
