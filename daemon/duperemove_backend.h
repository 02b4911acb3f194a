// DuperemoveBackend: the DedupeBackend that runs the duperemove(8) binary.
//
// For users who trust duperemove's long track record more than a new ioctl loop. The
// engine has already hashed the files and chosen the reference, so duperemove is run
// in its whole-file mode, which hashes nothing: `duperemove --fdupes -d -A -b 4096`
// with the group on standard input, reference first (duperemove keeps the first file's
// extents and shares the others with them; -A opens destinations read-only, which root
// may dedupe into; -b 4096 because duperemove ignores files smaller than its block
// size, 128 KiB by default). A path containing a newline cannot be written in that
// line-based input; such a batch is passed as arguments instead
// (`duperemove -d -A -b 4096 -q -- REF DEST...`, where duperemove hashes the files).
//
// Batches: the engine limits how many destinations one request carries
// (dedup_batch_size / max_dedup_batch); this backend further splits a request so that
// the paths of one invocation add up to at most `max_arg_length` bytes.
//
// Outcomes are read conservatively from duperemove's output: a destination it reports
// as "data changed" is kDiffers; one it reports any other status or error for, or any
// destination of a run that exited non-zero or was killed, is kFailed with duperemove's
// words; in whole-file mode so is a destination it did not list as queued (or all of
// them when the reference was not); the others are reported kDeduped — a claim the
// engine then verifies with FIEMAP, as it does for every backend.
//
// The program runs via fork/execvp (no shell). CheckAvailable() finds and runs
// `duperemove --version`, so a missing binary stops btrdupd at start-up.
//
// Not thread-safe.

#ifndef BTRDUPD_DAEMON_DUPEREMOVE_BACKEND_H_
#define BTRDUPD_DAEMON_DUPEREMOVE_BACKEND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dedupe_backend.h"

namespace btrdupd {

class DuperemoveBackend : public DedupeBackend {
 public:
  struct Options {
    // The program: a name looked up in $PATH, or a path.
    std::string binary = "duperemove";
    // Most bytes of paths (each counted with a terminating NUL) in one invocation.
    uint64_t max_arg_length = 1048576;
  };

  explicit DuperemoveBackend(Options options);

  std::string Name() const override { return "duperemove"; }
  absl::Status CheckAvailable() const override;
  absl::StatusOr<std::vector<DedupeOutcome>> Dedupe(const DedupeRequest& request) override;

  // How `destinations` are split into invocations with `reference` (indices into
  // `destinations`, in order). Every invocation has at least one destination, even if
  // that alone exceeds the limit. Exposed for tests.
  static std::vector<std::vector<size_t>> SplitByArgLength(
      const std::string& reference, const std::vector<std::string>& destinations,
      uint64_t max_arg_length);

  // Reads one invocation's output into outcomes for `destinations`. Exposed for tests.
  static std::vector<DedupeOutcome> ParseOutcomes(const std::vector<std::string>& destinations,
                                                  uint64_t size, int exit_code,
                                                  const std::string& output);

 private:
  absl::StatusOr<std::vector<DedupeOutcome>> RunBatch(const std::string& program,
                                                      const std::string& reference,
                                                      const std::vector<std::string>& batch,
                                                      uint64_t size);

  const Options options_;
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_DUPEREMOVE_BACKEND_H_
