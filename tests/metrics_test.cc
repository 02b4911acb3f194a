// --metrics-file: the Prometheus text exposition format, checked by a parser that
// follows the format's rules (metric and label name syntax, label value escapes, HELP
// and TYPE once per family and before its samples, each family's lines together, no
// series twice, values that parse, a final line feed), and figures that match what a
// one-shot run did on a real btrfs; --json's summary parsed the same way.

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/metrics.h"
#include "daemon/status_json.h"
#include "gtest/gtest.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::BtrfsTest;
using ::btrdupd::testing::CommandResult;
using ::btrdupd::testing::ReadFile;
using ::btrdupd::testing::RunCommand;
using ::btrdupd::testing::WritePatternFile;

// One sample: family name + its labels, and the value.
struct Series {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

bool IsMetricName(absl::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    c == ':' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(absl::string_view s) {
  return IsMetricName(s) && s.find(':') == absl::string_view::npos &&
         !absl::StartsWith(s, "__");
}

// Parses `text` by the text format's rules; every violation is a test failure.
// Returns the samples and the TYPE of each family.
std::vector<Series> ParseExposition(const std::string& text,
                                    std::map<std::string, std::string>* types) {
  std::vector<Series> out;
  EXPECT_TRUE(text.empty() || text.back() == '\n') << "the last line must end with \\n";
  std::set<std::string> helped, finished, keys;
  std::string current;  // the family whose lines are being read
  auto enter = [&](const std::string& family) {
    if (family == current) return;
    EXPECT_EQ(finished.count(family), 0u) << family << ": its lines are not together";
    if (!current.empty()) finished.insert(current);
    current = family;
  };
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  for (const std::string& line : lines) {
    if (absl::StartsWith(line, "#")) {
      std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (parts.size() >= 3 && (parts[1] == "HELP" || parts[1] == "TYPE")) {
        EXPECT_TRUE(IsMetricName(parts[2])) << line;
        enter(parts[2]);
        if (parts[1] == "HELP") {
          EXPECT_TRUE(helped.insert(parts[2]).second) << "second HELP: " << line;
        } else {
          EXPECT_EQ(parts.size(), 4u) << line;
          const std::string type = parts.size() == 4 ? parts[3] : "";
          EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram" ||
                      type == "summary" || type == "untyped")
              << line;
          EXPECT_TRUE(types->emplace(parts[2], type).second) << "second TYPE: " << line;
          EXPECT_EQ(keys.count(parts[2]), 0u) << "TYPE after samples: " << line;
        }
      }
      continue;
    }
    Series s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    EXPECT_TRUE(IsMetricName(s.name)) << line;
    enter(s.name);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        if (eq == std::string::npos) {
          ADD_FAILURE() << line;
          return out;
        }
        const std::string label = line.substr(i, eq - i);
        EXPECT_TRUE(IsLabelName(label)) << line;
        i = eq + 1;
        EXPECT_EQ(line[i], '"') << line;
        ++i;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            ++i;
            if (i >= line.size()) {
              ADD_FAILURE() << line;
              return out;
            }
            EXPECT_TRUE(line[i] == '\\' || line[i] == '"' || line[i] == 'n') << line;
            value.push_back(line[i] == 'n' ? '\n' : line[i]);
          } else {
            value.push_back(line[i]);
          }
          ++i;
        }
        if (i >= line.size()) {
          ADD_FAILURE() << "unterminated label value: " << line;
          return out;
        }
        ++i;  // closing quote
        EXPECT_TRUE(s.labels.emplace(label, value).second) << "label twice: " << line;
        if (i < line.size() && line[i] == ',') ++i;
      }
      EXPECT_LT(i, line.size()) << line;
      ++i;  // '}'
    }
    EXPECT_EQ(line[i], ' ') << line;
    std::vector<std::string> rest = absl::StrSplit(line.substr(i + 1), ' ');
    EXPECT_TRUE(rest.size() == 1 || rest.size() == 2) << line;  // value [timestamp]
    const std::string& v = rest[0];
    EXPECT_TRUE(v == "NaN" || v == "+Inf" || v == "-Inf" || absl::SimpleAtod(v, &s.value))
        << line;
    std::string key = s.name;
    for (const auto& [k, val] : s.labels) absl::StrAppend(&key, "\x1f", k, "=", val);
    EXPECT_TRUE(keys.insert(key).second) << "series twice: " << line;
    keys.insert(s.name);
    if (types->count(s.name) > 0 && (*types)[s.name] == "counter") {
      EXPECT_TRUE(absl::EndsWith(s.name, "_total")) << s.name;
    }
    out.push_back(std::move(s));
  }
  return out;
}

double Value(const std::vector<Series>& all, absl::string_view name,
             absl::string_view volume, absl::string_view kind = "") {
  for (const Series& s : all) {
    auto v = s.labels.find("volume");
    auto k = s.labels.find("kind");
    if (s.name == name && v != s.labels.end() && v->second == volume &&
        (kind.empty() ? k == s.labels.end() : (k != s.labels.end() && k->second == kind))) {
      return s.value;
    }
  }
  ADD_FAILURE() << "no " << name << " for " << volume;
  return -1;
}

TEST(MetricsFormatTest, FollowsTheExpositionFormatForAnyVolumePath) {
  VolumeMetrics a;
  a.volume = "/mnt/odd \"name\"\\with\nnewline\xff";
  a.up = true;
  a.deduped_files_total = 3;
  a.deduped_bytes_total = 12345678901ULL;
  a.freed_bytes_total = 2345678901ULL;
  a.files_tracked = 10;
  a.skipped_by_kind = {{"immutable", 2}, {"busy", 1}};
  a.errors = {{"scan", 4}};
  a.last_full_scan = absl::FromUnixSeconds(1764460800);
  a.taken = absl::FromUnixSeconds(1764464400);
  VolumeMetrics b;
  b.volume = "/srv/backup";
  b.up = false;
  b.errors = {{"open", 1}};
  std::map<std::string, std::string> types;
  std::vector<Series> all = ParseExposition(FormatMetrics({a, b}), &types);
  const std::string a_label = "/mnt/odd \"name\"\\with\nnewline\xef\xbf\xbd";
  EXPECT_EQ(Value(all, "btrdupd_deduped_bytes_total", a_label), 12345678901.0);
  EXPECT_EQ(Value(all, "btrdupd_freed_bytes_total", a_label), 2345678901.0);
  EXPECT_EQ(Value(all, "btrdupd_skipped_files", a_label, "immutable"), 2);
  EXPECT_EQ(Value(all, "btrdupd_last_full_scan_timestamp_seconds", a_label), 1764460800);
  EXPECT_EQ(Value(all, "btrdupd_up", "/srv/backup"), 0);
  EXPECT_EQ(Value(all, "btrdupd_errors_total", "/srv/backup", "open"), 1);
  EXPECT_EQ(types["btrdupd_deduped_bytes_total"], "counter");
  EXPECT_EQ(types["btrdupd_files_waiting"], "gauge");
}

class MetricsFileTest : public BtrfsTest {};

TEST_F(MetricsFileTest, OneShotWritesMetricsAndJsonThatMatchTheRun) {
  constexpr uint64_t kSize = 256 * 1024;
  ASSERT_TRUE(WritePatternFile(Path("a"), kSize, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path("b"), kSize, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path("c"), kSize, 1).ok());
  ASSERT_TRUE(WritePatternFile(Path("fresh"), 3 * kSize, 2).ok());
  ASSERT_TRUE(WritePatternFile(Path("fresh2"), 3 * kSize, 3).ok());
  sync();
  const char* tmp = getenv("TEST_TMPDIR");
  const std::string metrics = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/btrdupd.prom");
  // a, b, c look an hour old; "fresh" files too: they only share their size.
  absl::StatusOr<CommandResult> r =
      RunCommand({"daemon/btrdupd", "--json", "--metrics-file=" + metrics, mount_path()});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->exit_code, 0) << r->stderr_text;

  absl::StatusOr<JsonValue> json = ParseJson(r->stdout_text);
  ASSERT_TRUE(json.ok()) << json.status() << r->stdout_text;
  EXPECT_EQ(json->Find("exit_code")->number, 0);
  const JsonValue* volumes = json->Find("volumes");
  ASSERT_NE(volumes, nullptr);
  ASSERT_EQ(volumes->array.size(), 1u);
  const JsonValue& v = volumes->array[0];
  EXPECT_TRUE(v.Find("ok")->boolean);
  EXPECT_EQ(v.Find("scan")->Find("kind")->string, "full");
  EXPECT_EQ(v.Find("scan")->Find("files_seen")->number, 5);
  // Written a moment ago: all five wait (their stability wait counts from now).
  EXPECT_EQ(v.Find("files_waiting")->number, 5);
  EXPECT_EQ(v.Find("files_deduped")->number, 0);
  EXPECT_NE(v.Find("next_eligible")->type, JsonValue::Type::kNull);
  // Every key once per object (the reader keeps one of two equal keys; a consumer may not).
  EXPECT_EQ(v.Find("maintenance")->type, JsonValue::Type::kArray);
  EXPECT_EQ(r->stdout_text.find("\"maintenance\""),
            r->stdout_text.rfind("\"maintenance\""))
      << r->stdout_text;

  // Again an hour later (for btrdupd's clock): the copies are deduped.
  r = RunCommand({"daemon/btrdupd", "--json", "--metrics-file=" + metrics,
                  "--test-clock-offset=1h", mount_path()});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->exit_code, 0) << r->stderr_text;
  json = ParseJson(r->stdout_text);
  ASSERT_TRUE(json.ok()) << json.status() << r->stdout_text;
  const JsonValue& again = json->Find("volumes")->array[0];
  EXPECT_EQ(again.Find("files_deduped")->number, 2);
  EXPECT_EQ(again.Find("bytes_shared")->number, 2 * kSize);
  EXPECT_EQ(again.Find("bytes_freed")->number, 2 * kSize);  // plain copies: all freed
  EXPECT_EQ(again.Find("files_waiting")->number, 0);
  EXPECT_EQ(again.Find("skipped")->type, JsonValue::Type::kObject);
  const std::string volume = again.Find("volume")->string;

  absl::StatusOr<std::string> text = ReadFile(metrics);
  ASSERT_TRUE(text.ok()) << text.status();
  std::map<std::string, std::string> types;
  std::vector<Series> all = ParseExposition(*text, &types);
  EXPECT_EQ(Value(all, "btrdupd_up", volume), 1);
  EXPECT_EQ(Value(all, "btrdupd_deduped_files_total", volume), 2);
  EXPECT_EQ(Value(all, "btrdupd_deduped_bytes_total", volume), 2 * kSize);
  EXPECT_EQ(Value(all, "btrdupd_freed_bytes_total", volume), 2 * kSize);
  EXPECT_EQ(Value(all, "btrdupd_files_tracked", volume), 5);
  EXPECT_EQ(Value(all, "btrdupd_files_waiting", volume), 0);
  EXPECT_GT(Value(all, "btrdupd_last_full_scan_timestamp_seconds", volume), 0);

  // A third run dedupes nothing new: the counters keep their totals.
  r = RunCommand({"daemon/btrdupd", "--metrics-file=" + metrics, "--test-clock-offset=1h",
                  mount_path()});
  ASSERT_TRUE(r.ok() && r->exit_code == 0);
  text = ReadFile(metrics);
  ASSERT_TRUE(text.ok());
  types.clear();
  all = ParseExposition(*text, &types);
  EXPECT_EQ(Value(all, "btrdupd_deduped_bytes_total", volume), 2 * kSize);
  EXPECT_EQ(access(absl::StrCat(metrics, ".tmp.", 0).c_str(), F_OK), -1);
}

}  // namespace
}  // namespace btrdupd
