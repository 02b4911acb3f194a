// The btrdupd command line, run as a program: bad options are usage errors (exit 2)
// naming the option, --help is complete, --version works; and volume names derived
// from mount paths are unique. Nothing here mounts a filesystem.

#include <sys/resource.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/config.h"
#include "daemon/priority.h"
#include "daemon/status_server.h"
#include "daemon/volume_name.h"
#include "ioctl/ioprio.h"
#include "gtest/gtest.h"
#include "tests/testing/command.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::CommandResult;
using ::btrdupd::testing::RunCommand;

constexpr char kBinary[] = "daemon/btrdupd";

CommandResult Btrdupd(std::vector<std::string> args) {
  args.insert(args.begin(), kBinary);
  absl::StatusOr<CommandResult> result = RunCommand(args);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : CommandResult{-1, "", ""};
}

TEST(CliTest, PrintConfigWritesAFileThatParsesBackToTheDefaults) {
  CommandResult r = Btrdupd({"--print-config"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  absl::StatusOr<VolumeConfig> parsed = ParseVolumeConfig(r.stdout_text, "printed");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const VolumeConfig defaults;
  EXPECT_EQ(parsed->min_file_size, defaults.min_file_size);
  EXPECT_EQ(parsed->max_generation_gap, defaults.max_generation_gap);
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "[change_detection]")) << r.stdout_text;
}

TEST(CliTest, UnknownOptionIsUsageErrorNamingIt) {
  CommandResult r = Btrdupd({"--frobnicate", "/mnt"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "--frobnicate")) << r.stderr_text;
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "--help")) << r.stderr_text;
}

TEST(CliTest, UnknownShortOptionIsUsageError) {
  CommandResult r = Btrdupd({"-x", "/mnt"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "-x")) << r.stderr_text;
}

TEST(CliTest, BadBackendIsUsageErrorNamingFlagAndChoices) {
  CommandResult r = Btrdupd({"--backend=zfs", "/mnt"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "--backend")) << r.stderr_text;
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "native or duperemove")) << r.stderr_text;
}

TEST(CliTest, BadBooleanValueIsUsageError) {
  CommandResult r = Btrdupd({"--dry-run=perhaps", "/mnt"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "--dry-run")) << r.stderr_text;
}

TEST(CliTest, OptionWithoutItsValueIsUsageError) {
  CommandResult r = Btrdupd({"--db-dir"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "--db-dir needs a value")) << r.stderr_text;
}

TEST(CliTest, DbDirAndItsOldNameNamingDifferentDirectoriesAreRefused) {
  CommandResult r = Btrdupd({"--db-dir=/a", "--db-path=/b", "/mnt"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "--db-dir=/a and --db-path=/b")) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "");
}

TEST(CliTest, DbDirAndItsOldNameNamingOneDirectoryAreNoUsageError) {
  // "/a" and "/a/" are one directory; the run then fails on the volume, not on the flags.
  CommandResult r = Btrdupd({"--status", "--db-dir=/nonexistent-btrdupd",
                             "--db-path=/nonexistent-btrdupd/", "/nonexistent-btrdupd-volume"});
  EXPECT_EQ(r.exit_code, 3) << r.stderr_text;
  EXPECT_FALSE(absl::StrContains(r.stderr_text, "different directories")) << r.stderr_text;
}

TEST(CliTest, JobsInDaemonModeIsRefusedAsUsageError) {
  CommandResult r = Btrdupd({"--daemon", "--jobs=2", "/mnt"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "--jobs is for one-shot runs only"))
      << r.stderr_text;
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "--daemon")) << r.stderr_text;
}

TEST(CliTest, JobsWithStatusIsRefusedAsUsageError) {
  CommandResult r = Btrdupd({"--status", "--jobs=0", "/mnt"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "--jobs is for one-shot runs only"))
      << r.stderr_text;
}

TEST(CliTest, BadJobsValueIsUsageErrorNamingTheRange) {
  for (const char* value : {"--jobs=-1", "--jobs=many", "--jobs=65"}) {
    CommandResult r = Btrdupd({value, "/mnt"});
    EXPECT_EQ(r.exit_code, 2) << value;
    EXPECT_TRUE(absl::StrContains(r.stderr_text, "--jobs")) << r.stderr_text;
    EXPECT_TRUE(absl::StrContains(r.stderr_text, "0 for one per CPU")) << r.stderr_text;
  }
}

TEST(CliTest, NoVolumeIsUsageError) {
  CommandResult r = Btrdupd({"--dry-run"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "VOLUME")) << r.stderr_text;
}

TEST(CliTest, OptionsWithoutMeaningInTheModeAreUsageErrorsNamingThem) {
  struct Case {
    std::vector<std::string> args;
    std::string named;
  };
  const std::vector<Case> cases = {
      {{"--daemon", "--dry-run", "/mnt"}, "--dry-run is for one-shot runs only, not for --daemon"},
      {{"--daemon", "--no-wait", "/mnt"}, "--no-wait"},
      {{"--status", "--backend=native", "/mnt"}, "--backend"},
      {{"--status", "--force-rescan", "/mnt"}, "--force-rescan"},
      {{"--daemon-status", "--db-dir=/x", "/mnt"}, "--db-dir is for"},
      {{"--daemon-status", "--db-path=/x", "/mnt"}, "--db-path is for"},
      {{"--scan-interval=5m", "/mnt"}, "--scan-interval is for --daemon only, not for one-shot"},
      {{"--socket-dir=/x", "/mnt"}, "--socket-dir"},
      {{"--daemon", "--json", "/mnt"}, "--json"},
      {{"--daemon", "-q", "/mnt"}, "--quiet"},
      {{"-q", "-v", "/mnt"}, "choose one"},
      {{"--daemon", "--jobs=2", "/mnt"}, "--jobs"},
      {{"--status", "--metrics-file=/x", "/mnt"}, "--metrics-file"},
      {{"--daemon", "--status", "/mnt"}, "--daemon and --status cannot be combined"},
  };
  for (const Case& c : cases) {
    CommandResult r = Btrdupd(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.named;
    EXPECT_TRUE(absl::StrContains(r.stderr_text, c.named)) << r.stderr_text;
    EXPECT_EQ(r.stdout_text, "");
  }
}

TEST(CliTest, HelpShowsUsageEveryOptionAndExitCodes) {
  CommandResult r = Btrdupd({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(absl::StartsWith(r.stdout_text, "Usage: btrdupd [OPTIONS] VOLUME...\n"));
  for (const char* option :
       {"--dry-run", "--status", "--force-rescan", "--db-dir=DIR", "--db-path=DIR", "--backend=native|duperemove",
        "-v, --verbose", "--version", "-h, --help", "--no-wait", "--jobs=N"}) {
    EXPECT_TRUE(absl::StrContains(r.stdout_text, option)) << option;
  }
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "Exit codes:"));
  for (const char* code : {"  0  ", "  1  ", "  2  ", "  3  "}) {
    EXPECT_TRUE(absl::StrContains(r.stdout_text, code)) << code;
  }
  // Abseil's own flags are not options of btrdupd.
  EXPECT_FALSE(absl::StrContains(r.stdout_text, "--flagfile"));
  EXPECT_EQ(Btrdupd({"-h"}).stdout_text, r.stdout_text);
}

TEST(CliTest, VersionPrintsVersion) {
  CommandResult r = Btrdupd({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(absl::StartsWith(r.stdout_text, "btrdupd ")) << r.stdout_text;
}

TEST(CliTest, AbseilBuiltinFlagsAreRejected) {
  EXPECT_EQ(Btrdupd({"--flagfile=/etc/passwd", "/mnt"}).exit_code, 2);
}

TEST(PriorityTest, LowerOwnPriorityGivesNice19AndTheIdleIoClass) {
  ASSERT_TRUE(LowerOwnPriority().ok());
  EXPECT_EQ(getpriority(PRIO_PROCESS, 0), 19);
  absl::StatusOr<int> io_class = GetIoClass();
  ASSERT_TRUE(io_class.ok()) << io_class.status();
  EXPECT_EQ(*io_class, 3);  // IOPRIO_CLASS_IDLE
}

TEST(VolumeNameTest, LikeSystemdEscapePath) {
  EXPECT_EQ(VolumeNameForPath("/mnt/data"), "mnt-data");
  EXPECT_EQ(VolumeNameForPath("/mnt/data/"), "mnt-data");
  EXPECT_EQ(VolumeNameForPath("/srv/my backup"), "srv-my\\x20backup");
  EXPECT_EQ(VolumeNameForPath("/mnt/.hidden"), "mnt-.hidden");
  EXPECT_EQ(VolumeNameForPath("/.snap"), "\\x2esnap");
  EXPECT_EQ(VolumeNameForPath("/"), "-");
}

TEST(VolumeNameTest, DifferentPathsNeverShareAName) {
  const std::vector<std::string> paths = {
      "/",       "/root",      "/-",          "/mnt/a-b", "/mnt/a/b", "/mnt/a\\x2db",
      "/mnt/ab", "/mnt/a_b",   "/mnt/a b",    "/mnt/a\nb", "/mnt/\xff", "/mnt/\\xff",
      "/mnt/a.b", "/mnt/a/.b", "/mnt/a\\x2eb"};
  for (size_t i = 0; i < paths.size(); ++i) {
    for (size_t j = i + 1; j < paths.size(); ++j) {
      EXPECT_NE(VolumeNameForPath(paths[i]), VolumeNameForPath(paths[j]))
          << paths[i] << " vs " << paths[j];
    }
  }
  // And a name is a single file name.
  for (const std::string& path : paths) {
    EXPECT_FALSE(absl::StrContains(VolumeNameForPath(path), '/')) << path;
  }
}

// A mount path of 1 500 bytes, most of them non-ASCII (four bytes each once escaped).
std::string LongNonAsciiPath(absl::string_view last) {
  std::string path;
  for (int i = 0; i < 10; ++i) {
    path += "/\xc3\xa9t\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac-\xd0\xb4\xd0\xb0\xd0\xbd\xd0\xbd\xd1\x8b\xd0\xb5";
  }
  return absl::StrCat(path, "/", last);
}

TEST(VolumeNameTest, LongNamesKeepAReadablePrefixAndAHashAndStayDistinct) {
  const std::string a = LongNonAsciiPath("a");
  const std::string b = LongNonAsciiPath("b");
  const std::string name_a = VolumeNameForPath(a);
  EXPECT_LE(name_a.size(), kMaxVolumeNameBytes);
  EXPECT_TRUE(absl::StartsWith(name_a, "\\xc3\\xa9t\\xc3\\xa9\\x2d")) << name_a;
  EXPECT_EQ(name_a.find('~'), name_a.size() - kMinShortNameBytes) << name_a;
  EXPECT_NE(name_a, VolumeNameForPath(b));
  EXPECT_EQ(name_a, VolumeNameForPath(a));  // the same every time (daemon and client)
  EXPECT_FALSE(absl::StrContains(name_a, '/'));
  // A cut never splits an escape: what precedes '~' is whole `\xNN` or plain bytes.
  for (size_t max = kMinShortNameBytes; max < 60; ++max) {
    const std::string shorter = ShortenName(name_a, max);
    EXPECT_LE(shorter.size(), max);
    const std::string prefix = shorter.substr(0, shorter.find('~'));
    for (size_t i = 0; i < prefix.size(); ++i) {
      if (prefix[i] == '\\') {
        ASSERT_LE(i + 4, prefix.size()) << shorter;
        i += 3;
      }
    }
  }
  // Short names are left alone.
  EXPECT_EQ(ShortenName("mnt-data", kMinShortNameBytes), "mnt-data");
}

TEST(VolumeNameTest, SocketPathsAlwaysFitSunPath) {
  const std::string name = VolumeNameForPath(LongNonAsciiPath("a"));
  for (size_t dir_size : {1, 12, 40, 84}) {
    const std::string dir = "/" + std::string(dir_size - 1, 'd');
    const std::string path = SocketPathFor(dir, name);
    EXPECT_LE(path.size(), kMaxSocketPathBytes) << path;
    EXPECT_TRUE(absl::StartsWith(path, dir + "/")) << path;
    EXPECT_TRUE(absl::EndsWith(path, ".sock")) << path;
    EXPECT_NE(path, SocketPathFor(dir, VolumeNameForPath(LongNonAsciiPath("b"))));
  }
  // A short name is kept whole.
  EXPECT_EQ(SocketPathFor("/run/btrdupd", "mnt-data"), "/run/btrdupd/mnt-data.sock");
}

TEST(VolumeNameTest, ASocketDirectoryTooLongForAnySocketNameIsRefused) {
  const std::string dir = "/tmp/" + std::string(kMaxSocketDirBytes, 'd');
  absl::Status refused = PrepareSocketDir(dir);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_TRUE(absl::StrContains(refused.message(), "--socket-dir")) << refused;
}

}  // namespace
}  // namespace btrdupd
