#include "daemon/session_flags.h"

#include <limits.h>
#include <unistd.h>

#include <set>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace btrdupd {

// A --backend value: parsing rejects anything but the two backends, so a typo is a
// usage error before any volume is touched.
struct BackendFlag {
  std::string name = "native";
};

bool AbslParseFlag(absl::string_view text, BackendFlag* flag, std::string* error) {
  absl::Status valid = ValidateBackendName(text);
  if (!valid.ok()) {
    *error = std::string(valid.message());
    return false;
  }
  flag->name = std::string(text);
  return true;
}

std::string AbslUnparseFlag(const BackendFlag& flag) { return flag.name; }

}  // namespace btrdupd

ABSL_FLAG(std::string, db_dir, "",
          "DIR: Keep each volume's database in DIR, as DIR/<volumename>.btrdupd.db\n"
          "(<volumename> is the mount path escaped like systemd-escape --path, e.g.\n"
          "mnt-data for /mnt/data), instead of VOLUME/.btrdupd/btrdupd.db. For volumes\n"
          "where nothing should be written, or to keep databases on faster storage.");
ABSL_FLAG(std::string, db_path, "",
          "DIR: The old name of --db-dir, still accepted with the same meaning.\n"
          "Giving both with different directories is a usage error.");
ABSL_FLAG(btrdupd::BackendFlag, backend, btrdupd::BackendFlag(),
          "native|duperemove: How files are deduped. native uses the kernel's\n"
          "FIDEDUPERANGE directly; duperemove runs the duperemove program (releases\n"
          "0.11-0.13 and 0.15; others are refused at start-up) on each group, handing\n"
          "it files btrdupd opened. Either way the result is verified with FIEMAP.");
ABSL_FLAG(bool, force_rescan, false,
          "Walk every directory of each VOLUME now instead of looking only at what\n"
          "changed since the last run (use when the database seems out of step).");

ABSL_FLAG(absl::Duration, test_clock_offset, absl::ZeroDuration(),
          "DURATION: For tests only: btrdupd's clock reads DURATION later than real\n"
          "time, so every file looks that much older (its stability wait ends\n"
          "sooner). Times recorded in the database are then not real; never use on\n"
          "real data.");

namespace btrdupd {

namespace {

// A --db-dir value as the sessions use it: no trailing '/', relative to the current
// directory made absolute.
std::string DatabaseDirectory(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (!dir.empty() && dir[0] != '/') {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) != nullptr) dir = absl::StrCat(cwd, "/", dir);
  }
  return dir;
}

}  // namespace

absl::Status CheckDatabaseDirectoryFlags(const std::set<std::string>& given) {
  if (given.count("db_dir") == 0 || given.count("db_path") == 0) return absl::OkStatus();
  const std::string dir = absl::GetFlag(FLAGS_db_dir);
  const std::string old = absl::GetFlag(FLAGS_db_path);
  if (DatabaseDirectory(dir) == DatabaseDirectory(old)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "--db-dir=", dir, " and --db-path=", old,
      " name different directories; --db-path is the old name of --db-dir: give one"));
}

SessionOptions SessionOptionsFromFlags() {
  SessionOptions options;
  const std::string dir = absl::GetFlag(FLAGS_db_dir);
  options.db_dir = DatabaseDirectory(dir.empty() ? absl::GetFlag(FLAGS_db_path) : dir);
  options.backend = absl::GetFlag(FLAGS_backend).name;
  options.force_rescan = absl::GetFlag(FLAGS_force_rescan);
  options.test_clock_offset = absl::GetFlag(FLAGS_test_clock_offset);
  return options;
}

}  // namespace btrdupd
