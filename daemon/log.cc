#include "daemon/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "daemon/utf8.h"

namespace btrdupd {
namespace {

std::atomic<bool> verbose{false};
absl::Mutex mu;
bool transient_showing = false;  // guarded by mu

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARNING";
    case LogLevel::kError:
      return "ERROR";
  }
  return "INFO";
}

void WriteAll(absl::string_view text) {
  while (!text.empty()) {
    ssize_t n = write(STDERR_FILENO, text.data(), text.size());
    if (n <= 0) return;  // nowhere left to report it
    text.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

std::atomic<bool> quiet{false};

void SetVerbose(bool v) { verbose.store(v); }
void SetQuiet(bool q) { quiet.store(q); }
bool IsVerbose() { return verbose.load(); }

bool StderrIsTerminal() {
  static const bool tty = isatty(STDERR_FILENO) == 1;
  return tty;
}

void Log(LogLevel level, absl::string_view volume, absl::string_view message) {
  if (level == LogLevel::kDebug && !IsVerbose()) return;
  if (level != LogLevel::kError && quiet.load()) return;
  std::string line = absl::StrCat("btrdupd[", getpid(), "]: ", LevelName(level), " ");
  // Paths in messages are bytes a user chose: no control character reaches stderr raw.
  if (!volume.empty()) absl::StrAppend(&line, EscapeControlCharacters(volume), ": ");
  absl::StrAppend(&line, EscapeControlCharacters(message), "\n");
  absl::MutexLock lock(&mu);
  if (transient_showing) {
    WriteAll("\r\033[K");
    transient_showing = false;
  }
  WriteAll(line);
}

void ShowTransientLine(absl::string_view text) {
  if (!StderrIsTerminal() || quiet.load()) return;
  absl::MutexLock lock(&mu);
  WriteAll(absl::StrCat("\r", EscapeControlCharacters(text), "\033[K"));
  transient_showing = !text.empty();
}

}  // namespace btrdupd
