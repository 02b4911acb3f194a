#include "daemon/mode_options.h"

#include <map>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace btrdupd {
namespace {

constexpr int kOneShot = 1 << static_cast<int>(RunMode::kOneShot);
constexpr int kDaemon = 1 << static_cast<int>(RunMode::kDaemon);
constexpr int kStatus = 1 << static_cast<int>(RunMode::kStatus);
constexpr int kDaemonStatus = 1 << static_cast<int>(RunMode::kDaemonStatus);
constexpr int kExplain = 1 << static_cast<int>(RunMode::kExplain);
constexpr int kAll = kOneShot | kDaemon | kStatus | kDaemonStatus | kExplain;

// The modes each option means something in. An option missing here is a mode-less
// option of the program itself (kAll). A new option adds its line.
const std::map<std::string, int>& OptionModes() {
  static const auto* modes = new std::map<std::string, int>{
      {"help", kAll},
      {"version", kAll},
      {"print_config", kAll},
      {"verbose", kAll},
      {"daemon", kDaemon},
      {"status", kStatus},
      {"daemon_status", kDaemonStatus},
      {"explain", kExplain},
      {"dry_run", kOneShot},
      {"no_wait", kOneShot},
      {"jobs", kOneShot},
      {"quiet", kOneShot},
      {"json", kOneShot | kStatus | kDaemonStatus | kExplain},
      {"force_rescan", kOneShot | kDaemon},
      {"backend", kOneShot | kDaemon},
      {"db_dir", kOneShot | kDaemon | kStatus | kExplain},
      {"db_path", kOneShot | kDaemon | kStatus | kExplain},  // the old name of db_dir
      {"metrics_file", kOneShot | kDaemon},
      {"test_clock_offset", kOneShot | kDaemon},
      {"socket_dir", kDaemon | kDaemonStatus},
      {"scan_interval", kDaemon},
      {"test_time_scale", kDaemon},
      {"test_hash_slice_bytes", kDaemon},
      {"test_hold_hash_while", kDaemon},
  };
  return *modes;
}

std::string Dashed(const std::string& name) {
  return absl::StrCat("--", absl::StrReplaceAll(name, {{"_", "-"}}));
}

const char* ModeName(RunMode mode) {
  switch (mode) {
    case RunMode::kOneShot:
      return "one-shot runs";
    case RunMode::kDaemon:
      return "--daemon";
    case RunMode::kStatus:
      return "--status";
    case RunMode::kDaemonStatus:
      return "--daemon-status";
    case RunMode::kExplain:
      return "--explain";
  }
  return "?";
}

}  // namespace

absl::StatusOr<RunMode> ModeOf(const std::set<std::string>& given) {
  std::vector<std::string> chosen;
  RunMode mode = RunMode::kOneShot;
  for (const auto& [name, m] : {std::pair<const char*, RunMode>{"daemon", RunMode::kDaemon},
                                {"status", RunMode::kStatus},
                                {"daemon_status", RunMode::kDaemonStatus},
                                {"explain", RunMode::kExplain}}) {
    if (given.count(name) > 0) {
      chosen.push_back(Dashed(name));
      mode = m;
    }
  }
  if (chosen.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(absl::StrJoin(chosen, " and "), " cannot be combined: choose one mode"));
  }
  return mode;
}

absl::Status CheckOptionsForMode(RunMode mode, const std::set<std::string>& given) {
  const int bit = 1 << static_cast<int>(mode);
  for (const std::string& name : given) {
    auto it = OptionModes().find(name);
    const int modes = it == OptionModes().end() ? kAll : it->second;
    if ((modes & bit) != 0) continue;
    std::vector<std::string> for_modes;
    for (RunMode m : {RunMode::kOneShot, RunMode::kDaemon, RunMode::kStatus,
                      RunMode::kDaemonStatus, RunMode::kExplain}) {
      if ((modes & (1 << static_cast<int>(m))) != 0) for_modes.push_back(ModeName(m));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(Dashed(name), " is for ", absl::StrJoin(for_modes, " and "),
                     " only, not for ", ModeName(mode)));
  }
  return absl::OkStatus();
}

}  // namespace btrdupd
