#include "daemon/progress.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "daemon/log.h"

namespace btrdupd {

std::string HumanBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 5) {
    value /= 1024.0;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", value, kUnits[unit]);
}

Progress::Progress(std::string volume, std::string phase, absl::Duration log_interval)
    : volume_(std::move(volume)),
      phase_(std::move(phase)),
      log_interval_(log_interval),
      terminal_(StderrIsTerminal()) {}

Progress::~Progress() { Finish(); }

std::string Progress::Describe(uint64_t done, uint64_t total, uint64_t bytes) const {
  std::string text = absl::StrCat(done);
  if (total > 0) absl::StrAppend(&text, "/", total);
  if (bytes > 0) absl::StrAppend(&text, ", ", HumanBytes(bytes));
  return text;
}

bool Progress::Due() {
  const absl::Time now = absl::Now();
  if (terminal_) {
    if (now - last_shown_ < absl::Milliseconds(200)) return false;
    last_shown_ = now;
    return true;
  }
  if (last_shown_ == absl::InfinitePast()) {
    last_shown_ = now;  // the first interval starts now: short phases log nothing
    return false;
  }
  if (now - last_shown_ < log_interval_) return false;
  last_shown_ = now;
  return true;
}

void Progress::Update(uint64_t done, uint64_t total, uint64_t bytes) {
  if (Due()) Show(Describe(done, total, bytes));
}

void Progress::UpdateText(absl::string_view text) {
  if (Due()) Show(text);
}

void Progress::Show(absl::string_view text) {
  if (terminal_) {
    ShowTransientLine(absl::StrCat(volume_, ": ", phase_, ": ", text));
    shown_ = true;
  } else {
    LogInfo(volume_, "%s: %s", phase_, text);
  }
}

void Progress::Finish() {
  if (shown_) ShowTransientLine("");
  shown_ = false;
}

}  // namespace btrdupd
