#include "daemon/mode_options.h"

#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace btrdupd {
namespace {

// The modes, each with the option that chooses it (Abseil's spelling; none for
// one-shot, the default). A new mode adds its line here and in RunMode.
struct ModeSpec {
  RunMode mode;
  const char* option;
};
constexpr ModeSpec kModes[] = {
    {RunMode::kOneShot, ""},
    {RunMode::kDaemon, "daemon"},
    {RunMode::kStatus, "status"},
    {RunMode::kDaemonStatus, "daemon_status"},
    {RunMode::kExplain, "explain"},
};
static_assert(std::size(kModes) == static_cast<size_t>(RunMode::kExplain) + 1,
              "every RunMode has its line in kModes");

constexpr int Bit(RunMode mode) { return 1 << static_cast<int>(mode); }

constexpr int kOneShot = Bit(RunMode::kOneShot);
constexpr int kDaemon = Bit(RunMode::kDaemon);
constexpr int kStatus = Bit(RunMode::kStatus);
constexpr int kDaemonStatus = Bit(RunMode::kDaemonStatus);
constexpr int kExplain = Bit(RunMode::kExplain);
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

// How messages name a mode: by its option, "one-shot runs" for the default.
std::string ModeName(RunMode mode) {
  for (const ModeSpec& spec : kModes) {
    if (spec.mode == mode && *spec.option != '\0') return Dashed(spec.option);
  }
  return "one-shot runs";
}

}  // namespace

absl::StatusOr<RunMode> ModeOf(const std::set<std::string>& given) {
  std::vector<std::string> chosen;
  RunMode mode = RunMode::kOneShot;
  for (const ModeSpec& spec : kModes) {
    if (*spec.option != '\0' && given.count(spec.option) > 0) {
      chosen.push_back(Dashed(spec.option));
      mode = spec.mode;
    }
  }
  if (chosen.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(absl::StrJoin(chosen, " and "), " cannot be combined: choose one mode"));
  }
  return mode;
}

absl::Status CheckOptionsForMode(RunMode mode, const std::set<std::string>& given) {
  for (const std::string& name : given) {
    auto it = OptionModes().find(name);
    const int modes = it == OptionModes().end() ? kAll : it->second;
    if ((modes & Bit(mode)) != 0) continue;
    std::vector<std::string> for_modes;
    for (const ModeSpec& spec : kModes) {
      if ((modes & Bit(spec.mode)) != 0) for_modes.push_back(ModeName(spec.mode));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(Dashed(name), " is for ", absl::StrJoin(for_modes, " and "),
                     " only, not for ", ModeName(mode)));
  }
  return absl::OkStatus();
}

}  // namespace btrdupd
