// The manual page and the install script: `man -l` renders btrdupd(8) without a
// warning, the page names every option --help lists, and install.sh puts the binary,
// the unit (pointing at that binary), the defaults file (kept on a reinstall) and the
// page in place under a staging directory. Nothing here mounts a filesystem.

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::CommandResult;
using ::btrdupd::testing::ReadFile;
using ::btrdupd::testing::RunCommand;
using ::btrdupd::testing::RunShell;
using ::btrdupd::testing::WriteFile;

CommandResult Exec(const std::vector<std::string>& argv) {
  absl::StatusOr<CommandResult> r = RunCommand(argv);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : CommandResult{-1, "", ""};
}

CommandResult Shell(const std::string& command) {
  absl::StatusOr<CommandResult> r = RunShell(command);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : CommandResult{-1, "", ""};
}

std::string TempDir(const std::string& name) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name, ".XXXXXX");
  EXPECT_NE(mkdtemp(dir.data()), nullptr);
  return dir;
}

// Renders the page as `man -l` does for a reader; returns {stderr (warnings), text}.
std::pair<std::string, std::string> RenderMan(const std::string& page) {
  CommandResult r = Shell(absl::StrCat("LC_ALL=C.UTF-8 MANWIDTH=80 MAN_KEEP_FORMATTING= ",
                                       "man --warnings -l '", page, "'"));
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  return {r.stderr_text, r.stdout_text};
}

TEST(ManPageTest, RendersWithoutWarningsAndNamesEveryOptionOfHelp) {
  auto [warnings, text] = RenderMan("man/btrdupd.8");
  EXPECT_EQ(warnings, "");
  EXPECT_TRUE(absl::StrContains(text, "BTRDUPD(8)")) << text;
  CommandResult help = Exec({"daemon/btrdupd", "--help"});
  ASSERT_EQ(help.exit_code, 0);
  int options = 0;
  for (absl::string_view line : absl::StrSplit(help.stdout_text, '\n')) {
    if (!absl::StartsWith(line, "  -")) continue;
    // "  -v, --verbose" or "  --db-dir=DIR": the long name.
    const size_t at = line.find("--");
    std::string name(line.substr(at));
    name = name.substr(0, name.find('='));
    ++options;
    EXPECT_TRUE(absl::StrContains(text, name)) << name << " is not in btrdupd(8)";
  }
  EXPECT_GT(options, 10);
}

TEST(InstallTest, PutsBinaryUnitDefaultsAndManPageInPlaceAndKeepsEditedDefaults) {
  const std::string dest = TempDir("install");
  CommandResult r = Exec({"./install.sh", "--prefix=/opt/btrdupd", "--destdir=" + dest,
                         "--binary=daemon/btrdupd"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text << r.stdout_text;

  const std::string bin = dest + "/opt/btrdupd/bin/btrdupd";
  struct stat st;
  ASSERT_EQ(stat(bin.c_str(), &st), 0) << r.stdout_text;
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_TRUE(absl::StrContains(Exec({bin, "--version"}).stdout_text, "btrdupd"));

  absl::StatusOr<std::string> unit = ReadFile(dest + "/etc/systemd/system/btrdupd.service");
  ASSERT_TRUE(unit.ok()) << unit.status();
  EXPECT_TRUE(absl::StrContains(*unit, "\nExecStart=/opt/btrdupd/bin/btrdupd --daemon "))
      << *unit;

  const std::string defaults = dest + "/etc/default/btrdupd";
  absl::StatusOr<std::string> text = ReadFile(defaults);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_TRUE(absl::StrContains(*text, "BTRDUPD_VOLUMES=")) << *text;

  const std::string page = dest + "/opt/btrdupd/share/man/man8/btrdupd.8";
  EXPECT_EQ(RenderMan(page).first, "");

  // A reinstall keeps the volumes the admin listed.
  ASSERT_TRUE(WriteFile(defaults, "BTRDUPD_VOLUMES=\"/srv/mine\"\n").ok());
  ASSERT_EQ(Exec({"./install.sh", "--prefix=/opt/btrdupd", "--destdir=" + dest,
                 "--binary=daemon/btrdupd"})
                .exit_code,
            0);
  text = ReadFile(defaults);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "BTRDUPD_VOLUMES=\"/srv/mine\"\n");
}

TEST(InstallTest, BadArgumentsAreRefused) {
  EXPECT_EQ(Exec({"./install.sh", "--prefix=relative"}).exit_code, 2);
  EXPECT_EQ(Exec({"./install.sh", "--frobnicate"}).exit_code, 2);
}

}  // namespace
}  // namespace btrdupd
