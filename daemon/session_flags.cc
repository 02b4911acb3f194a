#include "daemon/session_flags.h"

#include <limits.h>
#include <unistd.h>

#include <string>

#include "absl/flags/flag.h"
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

ABSL_FLAG(std::string, db_path, "",
          "DIR: Keep each volume's database in DIR, as DIR/<volumename>.btrdupd.db\n"
          "(<volumename> is the mount path escaped like systemd-escape --path, e.g.\n"
          "mnt-data for /mnt/data), instead of VOLUME/.btrdupd/btrdupd.db. For volumes\n"
          "where nothing should be written, or to keep databases on faster storage.");
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

SessionOptions SessionOptionsFromFlags() {
  SessionOptions options;
  options.db_dir = absl::GetFlag(FLAGS_db_path);
  while (options.db_dir.size() > 1 && options.db_dir.back() == '/') options.db_dir.pop_back();
  if (!options.db_dir.empty() && options.db_dir[0] != '/') {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) != nullptr) {
      options.db_dir = absl::StrCat(cwd, "/", options.db_dir);
    }
  }
  options.backend = absl::GetFlag(FLAGS_backend).name;
  options.force_rescan = absl::GetFlag(FLAGS_force_rescan);
  options.test_clock_offset = absl::GetFlag(FLAGS_test_clock_offset);
  return options;
}

}  // namespace btrdupd
