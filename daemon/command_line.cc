#include "daemon/command_line.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace btrdupd {
namespace {

// Only flags defined in btrdupd's own daemon/ sources are options of the program;
// Abseil's built-in ones (--flagfile, --fromenv, ...) are not offered.
bool IsBtrdupdFlag(const absl::CommandLineFlag& flag) {
  return absl::StrContains(flag.Filename(), "daemon/");
}

absl::CommandLineFlag* FindBtrdupdFlag(absl::string_view name) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr || !IsBtrdupdFlag(*flag)) return nullptr;
  return flag;
}

std::string Dashed(absl::string_view name) {
  return absl::StrReplaceAll(name, {{"_", "-"}});
}

absl::Status SetFlag(absl::CommandLineFlag* flag, absl::string_view value) {
  std::string error;
  if (!flag->ParseFrom(value, &error)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid value '", value,
                                                   "' for option --", Dashed(flag->Name()),
                                                   ": ", error));
  }
  return absl::OkStatus();
}

// Splits "METAVAR: text" into its parts; no metavariable gives {"VALUE", help}.
std::pair<std::string, std::string> SplitMetavar(absl::string_view help) {
  const size_t colon = help.find(": ");
  if (colon != absl::string_view::npos && colon > 0) {
    absl::string_view head = help.substr(0, colon);
    const bool choices = absl::StrContains(head, '|') &&
                         !absl::StrContains(head, ' ');  // "native|duperemove"
    if (choices || std::all_of(head.begin(), head.end(), [](char c) {
          return absl::ascii_isupper(c) || c == '_' || c == '-';
        })) {
      return {std::string(head), std::string(help.substr(colon + 2))};
    }
  }
  return {"VALUE", std::string(help)};
}

}  // namespace

absl::StatusOr<CommandLine> ParseCommandLine(int argc, char** argv) {
  CommandLine parsed;
  std::vector<std::string>& positional = parsed.positional;
  bool options_ended = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (options_ended || arg.size() < 2 || arg[0] != '-') {
      positional.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      options_ended = true;
      continue;
    }
    if (arg == "-v") arg = "--verbose";
    if (arg == "-q") arg = "--quiet";
    if (arg == "-h") arg = "--help";
    absl::string_view body = arg;
    if (!absl::ConsumePrefix(&body, "--")) absl::ConsumePrefix(&body, "-");
    std::string name;
    std::optional<std::string> value;
    const size_t eq = body.find('=');
    if (eq == absl::string_view::npos) {
      name = std::string(body);
    } else {
      name = std::string(body.substr(0, eq));
      value = std::string(body.substr(eq + 1));
    }
    const std::string shown = absl::StrCat("--", Dashed(name));
    name = absl::StrReplaceAll(name, {{"-", "_"}});
    absl::CommandLineFlag* flag = FindBtrdupdFlag(name);
    if (flag == nullptr && !value.has_value() && absl::StartsWith(name, "no")) {
      absl::CommandLineFlag* negated = FindBtrdupdFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) {
        absl::Status status = SetFlag(negated, "false");
        if (!status.ok()) return status;
        parsed.given.insert(std::string(negated->Name()));
        continue;
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option ", shown));
    }
    if (!value.has_value()) {
      if (flag->IsOfType<bool>()) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("option ", shown, " needs a value"));
      }
    }
    absl::Status status = SetFlag(flag, *value);
    if (!status.ok()) return status;
    parsed.given.insert(std::string(flag->Name()));
  }
  return parsed;
}

std::string FlagsHelp() {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (IsBtrdupdFlag(*flag)) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const absl::CommandLineFlag* a, const absl::CommandLineFlag* b) {
              return a->Name() < b->Name();
            });
  std::string text;
  for (const absl::CommandLineFlag* flag : flags) {
    std::string spelled = absl::StrCat("--", Dashed(flag->Name()));
    std::string help = flag->Help();
    if (flag->Name() == "verbose") spelled = absl::StrCat("-v, ", spelled);
    if (flag->Name() == "quiet") spelled = absl::StrCat("-q, ", spelled);
    if (flag->Name() == "help") spelled = absl::StrCat("-h, ", spelled);
    if (!flag->IsOfType<bool>()) {
      auto [metavar, rest] = SplitMetavar(help);
      absl::StrAppend(&spelled, "=", metavar);
      help = rest;
      if (!flag->DefaultValue().empty()) {
        absl::StrAppend(&help, "\nDefault: ", flag->DefaultValue(), ".");
      }
    }
    absl::StrAppend(&text, "  ", spelled, "\n");
    for (absl::string_view line : absl::StrSplit(help, '\n')) {
      absl::StrAppend(&text, "      ", line, "\n");
    }
  }
  return text;
}

}  // namespace btrdupd
