// ExcludeList (core/exclude.h) and the `exclude` key of .btrdupd.conf: glob rules,
// directories, validation. Pure logic, no filesystem.

#include "core/exclude.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/config.h"
#include "gtest/gtest.h"

namespace btrdupd {
namespace {

ExcludeList List(const std::vector<std::string>& patterns) {
  absl::StatusOr<ExcludeList> list = ExcludeList::Parse(patterns);
  EXPECT_TRUE(list.ok()) << list.status();
  return list.ok() ? *list : ExcludeList();
}

TEST(GlobMatchTest, StarAndQuestionStayWithinAComponentDoubleStarCrossesSlashes) {
  EXPECT_TRUE(GlobMatch("*.qcow2", "vm.qcow2"));
  EXPECT_FALSE(GlobMatch("*.qcow2", "images/vm.qcow2"));
  EXPECT_TRUE(GlobMatch("images/?m.qcow2", "images/vm.qcow2"));
  EXPECT_FALSE(GlobMatch("a?b", "a/b"));
  EXPECT_TRUE(GlobMatch("var/lib/docker/**", "var/lib/docker/overlay2/x/y"));
  EXPECT_FALSE(GlobMatch("var/lib/docker/**", "var/lib/dockerx/y"));
  EXPECT_TRUE(GlobMatch("home/*/.cache/**", "home/alice/.cache/thumbs/1.png"));
  EXPECT_FALSE(GlobMatch("home/*/.cache/**", "home/alice/sub/.cache/x"));
  EXPECT_TRUE(GlobMatch("**/node_modules/**", "node_modules/x"));
  EXPECT_TRUE(GlobMatch("**/node_modules/**", "a/b/node_modules/x"));
  EXPECT_TRUE(GlobMatch("[a-c]x[!0-9]", "bxy"));
  EXPECT_FALSE(GlobMatch("[a-c]x[!0-9]", "bx7"));
  EXPECT_TRUE(GlobMatch("\\*", "*"));
  EXPECT_FALSE(GlobMatch("\\*", "a"));
}

TEST(ExcludeListTest, PatternWithoutSlashMatchesTheNameAtAnyDepth) {
  ExcludeList list = List({"*.qcow2"});
  EXPECT_TRUE(list.ExcludesFile("vm.qcow2"));
  EXPECT_TRUE(list.ExcludesFile("srv/images/vm.qcow2"));
  EXPECT_FALSE(list.ExcludesFile("srv/images/vm.raw"));
}

TEST(ExcludeListTest, DirectoryIsExcludedByItsPathOrEverythingBelowIt) {
  ExcludeList list = List({"var/lib/docker/**", "build/", ".cache"});
  EXPECT_TRUE(list.ExcludesDir("var/lib/docker"));
  EXPECT_FALSE(list.ExcludesDir("var/lib"));
  EXPECT_TRUE(list.ExcludesDir("build"));
  EXPECT_FALSE(list.ExcludesFile("build"));  // "build/" is for directories
  EXPECT_TRUE(list.ExcludesDir("home/bob/.cache"));
  EXPECT_FALSE(list.ExcludesDir("home/bob"));
}

TEST(ExcludeListTest, BadPatternsAreErrorsNamingThem) {
  for (const std::string& bad : {std::string(""), std::string("/abs/path"),
                                 std::string("a[bc"), std::string("tail\\")}) {
    absl::StatusOr<ExcludeList> list = ExcludeList::Parse({bad});
    EXPECT_TRUE(absl::IsInvalidArgument(list.status())) << bad << ": " << list.status();
    EXPECT_TRUE(absl::StrContains(list.status().message(), bad)) << list.status();
  }
}

TEST(ExcludeConfigTest, ParsesACommaSeparatedListAndRefusesABadPattern) {
  absl::StatusOr<VolumeConfig> config = ParseVolumeConfig(
      "[DEFAULT]\nexclude = *.qcow2 ,var/lib/docker/**,  home/*/.cache/**\n", "c");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->exclude,
            (std::vector<std::string>{"*.qcow2", "var/lib/docker/**", "home/*/.cache/**"}));
  absl::StatusOr<VolumeConfig> empty = ParseVolumeConfig("exclude =\n", "c");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->exclude.empty());
  absl::StatusOr<VolumeConfig> bad = ParseVolumeConfig("exclude = a,,b\n", "conf");
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "conf:1: exclude")) << bad.status();
}

TEST(ExcludeConfigTest, ReferenceConfigDocumentsExclude) {
  const std::string text = DefaultConfigText();
  EXPECT_TRUE(absl::StrContains(text, "\nexclude =\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "var/lib/docker/**")) << text;
}

}  // namespace
}  // namespace btrdupd
