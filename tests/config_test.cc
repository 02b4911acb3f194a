// .btrdupd.conf parsing (core/config.h): defaults, every key, every error class.

#include "core/config.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace btrdupd {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kFile[] = "/mnt/vol/.btrdupd.conf";

// The error message of parsing `text`, or "" if it parsed.
std::string ErrorOf(const std::string& text) {
  absl::StatusOr<VolumeConfig> config = ParseVolumeConfig(text, kFile);
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

std::string TempDir() {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/config.XXXXXX");
  EXPECT_NE(mkdtemp(dir.data()), nullptr);
  return dir;
}

TEST(ConfigTest, EmptyTextGivesDefaults) {
  absl::StatusOr<VolumeConfig> config = ParseVolumeConfig("", kFile);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->min_file_size, 8192u);
  EXPECT_EQ(config->initial_wait_minutes, 5);
  EXPECT_EQ(config->max_backoff_hours, 72);
  EXPECT_TRUE(config->dedup_snapshots);
  EXPECT_EQ(config->max_dedup_batch, 5);
  EXPECT_EQ(config->large_group_threshold, 10);
  EXPECT_EQ(config->dedup_batch_size, 50);
  EXPECT_EQ(config->max_arg_length, 1048576u);
  EXPECT_EQ(config->vacuum_interval_days, 30);
  EXPECT_EQ(config->dedup_reset_interval_days, 30);
  EXPECT_EQ(config->max_generation_gap, 10000u);
  EXPECT_EQ(config->full_scan_hour, 2);
  EXPECT_EQ(config->min_hours_between_full_scans, 24);
}

TEST(ConfigTest, MissingFileGivesDefaults) {
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(TempDir());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->min_file_size, 8192u);
  EXPECT_EQ(config->full_scan_hour, 2);
}

TEST(ConfigTest, EveryKeyParses) {
  const std::string text =
      "# comment\n"
      "; another comment\n"
      "\n"
      "[DEFAULT]\n"
      "min_file_size = 4096\n"
      "  initial_wait_minutes=1  \n"
      "max_backoff_hours\t=\t2\n"
      "dedup_snapshots = no\n"
      "max_dedup_batch = 6\n"
      "large_group_threshold = 11\n"
      "dedup_batch_size = 51\n"
      "max_arg_length = 65536\n"
      "vacuum_interval_days = 7\n"
      "dedup_reset_interval_days = 8\n"
      "\n"
      "[ change_detection ]\n"
      "max_generation_gap = 500\n"
      "full_scan_hour = 23\n"
      "min_hours_between_full_scans = 48\n";
  absl::StatusOr<VolumeConfig> c = ParseVolumeConfig(text, kFile);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->min_file_size, 4096u);
  EXPECT_EQ(c->initial_wait_minutes, 1);
  EXPECT_EQ(c->max_backoff_hours, 2);
  EXPECT_FALSE(c->dedup_snapshots);
  EXPECT_EQ(c->max_dedup_batch, 6);
  EXPECT_EQ(c->large_group_threshold, 11);
  EXPECT_EQ(c->dedup_batch_size, 51);
  EXPECT_EQ(c->max_arg_length, 65536u);
  EXPECT_EQ(c->vacuum_interval_days, 7);
  EXPECT_EQ(c->dedup_reset_interval_days, 8);
  EXPECT_EQ(c->max_generation_gap, 500u);
  EXPECT_EQ(c->full_scan_hour, 23);
  EXPECT_EQ(c->min_hours_between_full_scans, 48);

  const StabilityPolicy policy = ToStabilityPolicy(*c);
  EXPECT_EQ(policy.initial_wait, absl::Minutes(1));
  EXPECT_EQ(policy.max_backoff, absl::Hours(2));
}

TEST(ConfigTest, KeysBeforeAnySectionAreDefault) {
  absl::StatusOr<VolumeConfig> c = ParseVolumeConfig("min_file_size = 100000\n", kFile);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->min_file_size, 100000u);
}

TEST(ConfigTest, BooleanSpellings) {
  for (const char* yes : {"true", "TRUE", "yes", "Yes", "on", "1"}) {
    absl::StatusOr<VolumeConfig> c =
        ParseVolumeConfig(absl::StrCat("dedup_snapshots = ", yes), kFile);
    ASSERT_TRUE(c.ok()) << yes << ": " << c.status();
    EXPECT_TRUE(c->dedup_snapshots) << yes;
  }
  for (const char* no : {"false", "False", "no", "NO", "off", "0"}) {
    absl::StatusOr<VolumeConfig> c =
        ParseVolumeConfig(absl::StrCat("dedup_snapshots = ", no), kFile);
    ASSERT_TRUE(c.ok()) << no << ": " << c.status();
    EXPECT_FALSE(c->dedup_snapshots) << no;
  }
  EXPECT_THAT(ErrorOf("\n\ndedup_snapshots = maybe\n"),
              AllOf(HasSubstr("/mnt/vol/.btrdupd.conf:3:"),
                    HasSubstr("dedup_snapshots = maybe"), HasSubstr("true/false")));
}

TEST(ConfigTest, OutOfRangeNamesFileLineKeyAndRange) {
  EXPECT_EQ(ErrorOf("[DEFAULT]\n# x\n\n\n\n\nmax_backoff_hours = -3\n"),
            "/mnt/vol/.btrdupd.conf:7: max_backoff_hours = -3: must be an integer from 1 "
            "to 8760");
  EXPECT_THAT(ErrorOf("[change_detection]\nfull_scan_hour = 24\n"),
              AllOf(HasSubstr(":2: full_scan_hour = 24"), HasSubstr("from 0 to 23")));
  EXPECT_THAT(ErrorOf("max_arg_length = 100\n"),
              AllOf(HasSubstr(":1: max_arg_length = 100"), HasSubstr("4096")));
  EXPECT_THAT(ErrorOf("min_file_size = 0\n"),
              AllOf(HasSubstr("min_file_size = 0"), HasSubstr("at least 1")));
  EXPECT_THAT(ErrorOf("dedup_batch_size = 0\n"), HasSubstr("from 1 to"));
  EXPECT_THAT(ErrorOf("vacuum_interval_days = 0\n"), HasSubstr("from 1 to"));
  EXPECT_THAT(ErrorOf("initial_wait_minutes = 99999999999999\n"),
              HasSubstr("initial_wait_minutes = 99999999999999"));
  EXPECT_THAT(ErrorOf("min_file_size = 99999999999999999999999\n"),
              HasSubstr("min_file_size"));
  // Zero minutes of initial wait is allowed (hash as soon as seen).
  EXPECT_EQ(ErrorOf("initial_wait_minutes = 0\n"), "");
}

TEST(ConfigTest, WrongTypeIsAnError) {
  EXPECT_THAT(ErrorOf("min_file_size = 8k\n"),
              AllOf(HasSubstr(":1: min_file_size = 8k"), HasSubstr("integer")));
  EXPECT_THAT(ErrorOf("max_dedup_batch = five\n"), HasSubstr("max_dedup_batch = five"));
  EXPECT_THAT(ErrorOf("max_dedup_batch = 1.5\n"), HasSubstr("integer"));
  EXPECT_THAT(ErrorOf("max_dedup_batch = \n"), HasSubstr("max_dedup_batch = :"));
  EXPECT_THAT(ErrorOf("max_dedup_batch = 0x10\n"), HasSubstr("integer"));
  EXPECT_THAT(ErrorOf("max_dedup_batch = +5\n"), HasSubstr("integer"));
}

TEST(ConfigTest, TrailingCommentIsAnErrorWithAHint) {
  EXPECT_THAT(ErrorOf("min_file_size = 8192 # bytes\n"),
              AllOf(HasSubstr(":1: min_file_size = 8192 # bytes"),
                    HasSubstr("comments must be on a line of their own")));
}

TEST(ConfigTest, ByteOrderMarkAndCrLfAreAccepted) {
  absl::StatusOr<VolumeConfig> c = ParseVolumeConfig(
      "\xef\xbb\xbf[DEFAULT]\r\nmin_file_size = 12345\r\n[change_detection]\r\n"
      "full_scan_hour = 5\r\n",
      kFile);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->min_file_size, 12345u);
  EXPECT_EQ(c->full_scan_hour, 5);
}

TEST(ConfigTest, UnknownSectionIsAnError) {
  EXPECT_THAT(ErrorOf("[DEFAULT]\nmin_file_size = 9000\n[dedupe]\n"),
              AllOf(HasSubstr(":3:"), HasSubstr("unknown section [dedupe]"),
                    HasSubstr("[DEFAULT] or [change_detection]")));
  EXPECT_THAT(ErrorOf("[DEFAULT\n"), AllOf(HasSubstr(":1:"), HasSubstr("[name]")));
}

TEST(ConfigTest, UnknownKeyIsAnError) {
  EXPECT_THAT(ErrorOf("min_file_sise = 9000\n"),
              AllOf(HasSubstr(":1:"), HasSubstr("unknown key min_file_sise in [DEFAULT]"),
                    HasSubstr("min_file_size")));
}

TEST(ConfigTest, KeyInTheWrongSectionIsAnError) {
  EXPECT_THAT(ErrorOf("[DEFAULT]\nfull_scan_hour = 3\n"),
              AllOf(HasSubstr(":2: full_scan_hour"),
                    HasSubstr("belongs in [change_detection], not in [DEFAULT]")));
  EXPECT_THAT(ErrorOf("[change_detection]\nmin_file_size = 3\n"),
              HasSubstr("belongs in [DEFAULT]"));
}

TEST(ConfigTest, DuplicateKeyIsAnError) {
  EXPECT_THAT(ErrorOf("min_file_size = 9000\n[DEFAULT]\nmin_file_size = 9001\n"),
              AllOf(HasSubstr(":3: min_file_size = 9001"), HasSubstr("set twice")));
}

TEST(ConfigTest, LineThatIsNotKeyValueIsAnError) {
  EXPECT_THAT(ErrorOf("min_file_size 9000\n"),
              AllOf(HasSubstr(":1:"), HasSubstr("\"min_file_size 9000\""),
                    HasSubstr("expected `key = value`")));
  EXPECT_THAT(ErrorOf(" = 5\n"), AllOf(HasSubstr(":1:"), HasSubstr("missing key")));
}

TEST(ConfigTest, DefaultConfigTextListsEveryKeyAndParsesToDefaults) {
  const std::string text = DefaultConfigText();
  for (const char* key :
       {"min_file_size = 8192", "initial_wait_minutes = 5", "max_backoff_hours = 72",
        "dedup_snapshots = true", "max_dedup_batch = 5", "large_group_threshold = 10",
        "dedup_batch_size = 50", "max_arg_length = 1048576", "vacuum_interval_days = 30",
        "dedup_reset_interval_days = 30", "[change_detection]", "max_generation_gap = 10000",
        "full_scan_hour = 2", "min_hours_between_full_scans = 24"}) {
    EXPECT_THAT(text, HasSubstr(key));
  }
  absl::StatusOr<VolumeConfig> c = ParseVolumeConfig(text, "reference");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->min_file_size, VolumeConfig{}.min_file_size);
  EXPECT_EQ(c->full_scan_hour, VolumeConfig{}.full_scan_hour);
}

TEST(ConfigTest, LoadReadsTheFileAtTheVolumeRootAndNamesItInErrors) {
  const std::string dir = TempDir();
  {
    std::ofstream out(dir + "/.btrdupd.conf");
    out << "[DEFAULT]\nmin_file_size = 65536\n[change_detection]\nfull_scan_hour = 4\n";
  }
  absl::StatusOr<VolumeConfig> c = LoadVolumeConfig(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->min_file_size, 65536u);
  EXPECT_EQ(c->full_scan_hour, 4);
  {
    std::ofstream out(dir + "/.btrdupd.conf");
    out << "[DEFAULT]\nbogus = 1\n";
  }
  c = LoadVolumeConfig(dir + "/");
  EXPECT_TRUE(absl::IsInvalidArgument(c.status())) << c.status();
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr(absl::StrCat(dir, "/.btrdupd.conf:2: unknown key bogus")));
}

TEST(ConfigTest, UnreadableFileIsAnError) {
  const std::string dir = TempDir();
  // A directory where the file should be cannot be read as a config file.
  ASSERT_EQ(mkdir((dir + "/.btrdupd.conf").c_str(), 0755), 0);
  absl::StatusOr<VolumeConfig> c = LoadVolumeConfig(dir);
  EXPECT_TRUE(absl::IsFailedPrecondition(c.status())) << c.status();
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(".btrdupd.conf"));
}

}  // namespace
}  // namespace btrdupd
