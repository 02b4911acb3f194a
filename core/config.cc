#include "core/config.h"


#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "core/exclude.h"
#include "ioctl/errno_status.h"
#include "ioctl/trusted_file.h"

namespace btrdupd {
namespace {

constexpr char kDefaultSection[] = "DEFAULT";
constexpr char kChangeDetectionSection[] = "change_detection";

template <typename T>
using Field = T VolumeConfig::*;
using ListField = Field<std::vector<std::string>>;  // comma-separated globs

// Where a key's value is stored, which also says its type.
using KeyField = std::variant<Field<bool>, Field<int>, Field<uint64_t>, ListField>;

// One key of the file: where it lives, how it is checked, where it is stored.
struct KeySpec {
  const char* section;
  const char* name;
  uint64_t min;  // integers only
  uint64_t max;
  const char* comment;
  KeyField field;
};

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

const std::vector<KeySpec>& Keys() {
  static const auto* const keys = new std::vector<KeySpec>{
      {kDefaultSection, "min_file_size", 1, kU64Max,
       "Files smaller than this many bytes are not tracked", &VolumeConfig::min_file_size},
      {kDefaultSection, "initial_wait_minutes", 0, 525600,
       "A new or changed file waits this long after its last change before hashing",
       &VolumeConfig::initial_wait_minutes},
      {kDefaultSection, "max_backoff_hours", 1, 8760,
       "A file that keeps changing waits twice as long each time, at most this long",
       &VolumeConfig::max_backoff_hours},
      {kDefaultSection, "dedup_snapshots", 0, 0,
       "Also dedupe same-path, same-size files in snapshots of a subvolume",
       &VolumeConfig::dedup_snapshots},
      {kDefaultSection, "dedupe_across_owners", 0, 0,
       "Let files of different owners share extents; false: only files with the same owner "
       "(uid) do, so nobody learns from FIEMAP that another user's file matched a guess",
       &VolumeConfig::dedupe_across_owners},
      {kDefaultSection, "max_dedup_batch", 1, 10000,
       "Files deduped per backend call in a group smaller than large_group_threshold",
       &VolumeConfig::max_dedup_batch},
      {kDefaultSection, "large_group_threshold", 2, 1000000,
       "A group of at least this many identical files counts as large",
       &VolumeConfig::large_group_threshold},
      {kDefaultSection, "dedup_batch_size", 1, 1000000,
       "Files deduped per backend call in a large group", &VolumeConfig::dedup_batch_size},
      {kDefaultSection, "max_arg_length", 4096, 1ULL << 31,
       "duperemove backend: most bytes of file names per duperemove run",
       &VolumeConfig::max_arg_length},
      {kDefaultSection, "vacuum_interval_days", 1, 3650,
       "Days between VACUUMs of the database", &VolumeConfig::vacuum_interval_days},
      {kDefaultSection, "dedup_reset_interval_days", 1, 3650,
       "Days between forgetting dedupe states (hashes kept) so FIEMAP re-verifies all",
       &VolumeConfig::dedup_reset_interval_days},
      {kDefaultSection, "exclude", 0, 0,
       "Paths never indexed nor opened: shell globs relative to the volume root,\n"
       "separated by commas. * ? [a-z] stay within one path component, ** crosses '/';\n"
       "a pattern without '/' matches a file or directory name at any depth; a directory\n"
       "matched is not entered. A change takes effect at the next pass. Example:\n"
       "exclude = *.qcow2, var/lib/docker/**, home/*/.cache/**\n"
       "Default: none", &VolumeConfig::exclude},
      {kChangeDetectionSection, "max_generation_gap", 1, kU64Max,
       "A subvolume that moved more generations than this since the last pass gets a "
       "full scan", &VolumeConfig::max_generation_gap},
      {kChangeDetectionSection, "full_scan_hour", 0, 23,
       "Local hour at which scheduled full scans run", &VolumeConfig::full_scan_hour},
      {kChangeDetectionSection, "min_hours_between_full_scans", 1, 8760,
       "At most one scheduled full scan per this many hours",
       &VolumeConfig::min_hours_between_full_scans},
  };
  return *keys;
}

std::string Allowed(const KeySpec& key) {
  if (std::holds_alternative<ListField>(key.field)) {
    return "must be a list of globs, empty for none";
  }
  if (std::holds_alternative<Field<bool>>(key.field)) {
    return "must be true/false, yes/no, on/off or 1/0";
  }
  if (key.max == kU64Max) return absl::StrCat("must be an integer of at least ", key.min);
  return absl::StrCat("must be an integer from ", key.min, " to ", key.max);
}

std::string ValueText(bool value) { return value ? "true" : "false"; }
std::string ValueText(int value) { return absl::StrCat(value); }
std::string ValueText(uint64_t value) { return absl::StrCat(value); }
std::string ValueText(const std::vector<std::string>& globs) {
  return absl::StrJoin(globs, ", ");
}

std::string DefaultValue(const KeySpec& key) {
  const VolumeConfig defaults;
  return std::visit([&defaults](auto field) { return ValueText(defaults.*field); },
                    key.field);
}

std::string SectionList() {
  return absl::StrCat("[", kDefaultSection, "] or [", kChangeDetectionSection, "]");
}

std::string KeysOf(absl::string_view section) {
  std::vector<std::string> names;
  for (const KeySpec& key : Keys()) {
    if (key.section == section) names.push_back(key.name);
  }
  return absl::StrJoin(names, ", ");
}

absl::Status Error(absl::string_view file, int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ":", line, ": ", what));
}

bool ParseBool(absl::string_view text, bool* out) {
  const std::string v = absl::AsciiStrToLower(text);
  if (v == "true" || v == "yes" || v == "on" || v == "1") {
    *out = true;
    return true;
  }
  if (v == "false" || v == "no" || v == "off" || v == "0") {
    *out = false;
    return true;
  }
  return false;
}

// Decimal digits only (no sign, no spaces, no "0x"), within [min, max].
bool ParseInteger(absl::string_view text, uint64_t min, uint64_t max, uint64_t* out) {
  if (text.empty() || text.size() > 20) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  uint64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) return false;
  if (value < min || value > max) return false;
  *out = value;
  return true;
}

// Values cannot carry trailing comments; say so when a value looks like it does.
std::string CommentHint(absl::string_view value) {
  if (value.find('#') == absl::string_view::npos &&
      value.find(';') == absl::string_view::npos) {
    return "";
  }
  return " (comments must be on a line of their own)";
}

}  // namespace

absl::StatusOr<VolumeConfig> ParseVolumeConfig(absl::string_view text,
                                               absl::string_view file_name) {
  VolumeConfig config;
  std::string section = kDefaultSection;
  std::set<std::string> seen;  // "section.key"
  int line_number = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (line_number == 1) absl::ConsumePrefix(&raw, "\xef\xbb\xbf");  // UTF-8 BOM
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      if (line.back() != ']') {
        return Error(file_name, line_number,
                     absl::StrCat(line, ": a section header must look like [name]"));
      }
      std::string name(absl::StripAsciiWhitespace(line.substr(1, line.size() - 2)));
      if (name != kDefaultSection && name != kChangeDetectionSection) {
        return Error(file_name, line_number,
                     absl::StrCat("unknown section [", name, "]: sections are ",
                                  SectionList()));
      }
      section = name;
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return Error(file_name, line_number,
                   absl::StrCat("\"", line,
                                "\": expected `key = value`, `[section]` or a comment"));
    }
    const std::string key(absl::StripAsciiWhitespace(line.substr(0, eq)));
    const absl::string_view value = absl::StripAsciiWhitespace(line.substr(eq + 1));
    if (key.empty()) {
      return Error(file_name, line_number,
                   absl::StrCat("\"", line, "\": missing key name before '='"));
    }
    const KeySpec* spec = nullptr;
    const KeySpec* elsewhere = nullptr;
    for (const KeySpec& candidate : Keys()) {
      if (key != candidate.name) continue;
      if (section == candidate.section) {
        spec = &candidate;
      } else {
        elsewhere = &candidate;
      }
    }
    if (spec == nullptr) {
      if (elsewhere != nullptr) {
        return Error(file_name, line_number,
                     absl::StrCat(key, ": belongs in [", elsewhere->section,
                                  "], not in [", section, "]"));
      }
      return Error(file_name, line_number,
                   absl::StrCat("unknown key ", key, " in [", section, "]: known keys are ",
                                KeysOf(section)));
    }
    if (!seen.insert(absl::StrCat(section, ".", key)).second) {
      return Error(file_name, line_number,
                   absl::StrCat(key, " = ", value, ": ", key, " is set twice in [",
                                section, "]"));
    }
    if (const auto* list = std::get_if<ListField>(&spec->field)) {
      std::vector<std::string> items;
      if (!value.empty()) {
        for (absl::string_view item : absl::StrSplit(value, ',')) {
          items.emplace_back(absl::StripAsciiWhitespace(item));
        }
      }
      absl::StatusOr<ExcludeList> valid = ExcludeList::Parse(items);
      if (!valid.ok()) {
        return Error(file_name, line_number,
                     absl::StrCat(key, " = ", value, ": ", valid.status().message()));
      }
      config.**list = std::move(items);
    } else if (const auto* flag = std::get_if<Field<bool>>(&spec->field)) {
      bool b = false;
      if (!ParseBool(value, &b)) {
        return Error(file_name, line_number,
                     absl::StrCat(key, " = ", value, ": ", Allowed(*spec),
                                  CommentHint(value)));
      }
      config.**flag = b;
    } else {
      uint64_t n = 0;
      if (!ParseInteger(value, spec->min, spec->max, &n)) {
        return Error(file_name, line_number,
                     absl::StrCat(key, " = ", value, ": ", Allowed(*spec),
                                  CommentHint(value)));
      }
      if (const auto* small = std::get_if<Field<int>>(&spec->field)) {
        config.**small = static_cast<int>(n);  // every int key's max fits in an int
      } else {
        config.*std::get<Field<uint64_t>>(spec->field) = n;
      }
    }
  }
  return config;
}

absl::StatusOr<VolumeConfig> LoadVolumeConfig(const std::string& volume_root) {
  const std::string path =
      volume_root.empty() || volume_root.back() == '/'
          ? absl::StrCat(volume_root, kConfigFileName)
          : absl::StrCat(volume_root, "/", kConfigFileName);
  // Only a regular file owned by root and writable by nobody else is read; a symlink is
  // not followed and a FIFO or device is not opened (ioctl/trusted_file.h).
  constexpr size_t kMaxConfigBytes = 1 << 20;  // a config file is tiny; refuse garbage
  absl::StatusOr<std::string> text = ReadTrustedFile(path, kMaxConfigBytes);
  if (!text.ok()) {
    const absl::Status& status = text.status();
    if (absl::IsNotFound(status)) return VolumeConfig{};
    if (absl::IsFailedPrecondition(status)) return status;
    if (absl::IsOutOfRange(status)) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read ", path, ": larger than 1 MiB, not a config file"));
    }
    const int err = ErrnoOf(status).value_or(EIO);
    const std::string message = absl::StrCat("cannot read ", path, ": ", std::strerror(err));
    if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
    return absl::FailedPreconditionError(message);
  }
  return ParseVolumeConfig(*text, path);
}

std::string DefaultConfigText() {
  std::string out =
      "# btrdupd volume configuration: .btrdupd.conf at the root of the volume.\n"
      "# Every key is optional; these are the defaults. Unknown keys are errors.\n";
  std::string section;
  for (const KeySpec& key : Keys()) {
    if (key.section != section) {
      section = key.section;
      absl::StrAppend(&out, "\n[", section, "]\n");
    }
    std::string allowed = Allowed(key);
    const std::string value = DefaultValue(key);
    absl::StrAppend(&out, "# ", absl::StrReplaceAll(key.comment, {{"\n", "\n# "}}), " (",
                    allowed.substr(strlen("must be ")),
                    ").\n", key.name, " =", value.empty() ? "" : " ", value, "\n");
  }
  return out;
}

StabilityPolicy ToStabilityPolicy(const VolumeConfig& config) {
  StabilityPolicy policy;
  policy.initial_wait = absl::Minutes(config.initial_wait_minutes);
  policy.max_backoff = absl::Hours(config.max_backoff_hours);
  return policy;
}

}  // namespace btrdupd
