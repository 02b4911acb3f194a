// Progress of one long phase (scan, hash, dedupe) of one volume.
//
// On a terminal: a single status line on stderr, rewritten at most a few times a second
// ("/mnt/vol: hashing 1200/5000 files, 3.1 GiB"). Otherwise (cron, journald, a pipe):
// a plain INFO log line at most every `log_interval`, so logs stay short. Finish()
// erases the terminal line; the caller logs the phase's outcome itself.
//
// Not thread-safe: one phase is reported by one thread.

#ifndef BTRDUPD_DAEMON_PROGRESS_H_
#define BTRDUPD_DAEMON_PROGRESS_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace btrdupd {

// "1.5 GiB", "12.0 KiB", "512 B".
std::string HumanBytes(uint64_t bytes);

class Progress {
 public:
  Progress(std::string volume, std::string phase,
           absl::Duration log_interval = absl::Seconds(30));
  ~Progress();

  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Reports `done` units of `total` (0 = unknown) and `bytes` processed so far.
  void Update(uint64_t done, uint64_t total, uint64_t bytes);

  // Same, with a description of the caller's own ("hashed 12 files, 3.0 GiB read").
  void UpdateText(absl::string_view text);

  // Erases the terminal line. Idempotent; also done by the destructor.
  void Finish();

 private:
  std::string Describe(uint64_t done, uint64_t total, uint64_t bytes) const;
  bool Due();  // whether to show something now (throttling)
  void Show(absl::string_view text);

  const std::string volume_;
  const std::string phase_;
  const absl::Duration log_interval_;
  const bool terminal_;
  absl::Time last_shown_ = absl::InfinitePast();
  bool shown_ = false;
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_PROGRESS_H_
