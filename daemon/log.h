// One-line log messages on stderr, for people and for journald.
//
// Every line reads `btrdupd[PID]: LEVEL VOLUME: message` (the `VOLUME: ` part is left
// out for messages about no particular volume). DEBUG lines are printed only after
// SetVerbose(true) (`-v`). When stderr is a terminal, a transient status line (see
// daemon/progress.h) may be showing; a log line first erases it, so the two never mix.
//
// Thread-safe: lines from different threads are never interleaved.

#ifndef BTRDUPD_DAEMON_LOG_H_
#define BTRDUPD_DAEMON_LOG_H_

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace btrdupd {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

void SetVerbose(bool verbose);
bool IsVerbose();
// SetQuiet(true) (`-q`): only ERROR lines are written, and no transient line.
void SetQuiet(bool quiet);

// Writes one line. `volume` may be empty. Newlines inside `message` are written as "\n"
// so one event stays one line.
void Log(LogLevel level, absl::string_view volume, absl::string_view message);

template <typename... Args>
void LogDebug(absl::string_view volume, const absl::FormatSpec<Args...>& format,
              const Args&... args) {
  if (IsVerbose()) Log(LogLevel::kDebug, volume, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogInfo(absl::string_view volume, const absl::FormatSpec<Args...>& format,
             const Args&... args) {
  Log(LogLevel::kInfo, volume, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogWarning(absl::string_view volume, const absl::FormatSpec<Args...>& format,
                const Args&... args) {
  Log(LogLevel::kWarning, volume, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogError(absl::string_view volume, const absl::FormatSpec<Args...>& format,
              const Args&... args) {
  Log(LogLevel::kError, volume, absl::StrFormat(format, args...));
}

// True when stderr is a terminal (transient lines are possible).
bool StderrIsTerminal();

// Replaces the transient status line with `text` (terminal only; otherwise a no-op).
// An empty `text` erases it.
void ShowTransientLine(absl::string_view text);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_LOG_H_
