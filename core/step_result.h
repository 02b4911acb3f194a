// What the dedupe engine did: one step (StepResult), and totals (EngineStats).
//
// EngineCounts is the one set of counters: a step fills it, the engine adds every step
// to its EngineStats, a run adds its steps to its summary - all with +=, so every total
// means what the step's field means. Each field counts one outcome:
//  - a file read and hashed whole (files_hashed), only its prefix read and hashed
//    (prefixes_hashed: it counts again in files_hashed if later read whole), or its
//    hash copied from a member sharing all its extents (hashes_copied, nothing read);
//  - a destination verified shared after a dedupe call (files_deduped), found already
//    sharing all extents (files_already_shared), not the file the index recorded when
//    the engine reached it or changed since (files_changed: it waits again and the
//    scanner records it anew), refused for good (files_skipped, by kind in `skipped`),
//    busy for now (files_retry_later), gone (files_removed).
//
// Thread-compatible value types.

#ifndef BTRDUPD_CORE_STEP_RESULT_H_
#define BTRDUPD_CORE_STEP_RESULT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/skip_kind.h"

namespace btrdupd {

// A group the engine would dedupe (dry run).
struct PlannedGroup {
  uint64_t size = 0;
  std::string hash_hex;
  std::string reference_path;  // absolute
  std::vector<std::string> destination_paths;  // absolute; would be deduped
  int already_shared = 0;      // members already sharing all extents with the reference
  int not_dedupable = 0;       // members that would be skipped (received snapshot, +i, ...)
  uint64_t bytes_saveable = 0;  // size * destination_paths.size()
};

struct EngineCounts {
  // Hashing.
  int64_t files_hashed = 0;     // read whole and hashed (HashState::kFull)
  int64_t prefixes_hashed = 0;  // only the first prefix_bytes read and hashed
  int64_t hashes_copied = 0;    // taken from a member sharing all extents: nothing read
  uint64_t bytes_read = 0;      // data read to hash, with other members' prefixes read to
                                // compare against
  // Deduping.
  int64_t batches = 0;          // batches of one group worked on (kDedupeBatch steps)
  int64_t backend_calls = 0;    // DedupeBackend::Dedupe calls
  int64_t read_only_flips = 0;  // EROFS retries with a read-only snapshot made writable
  int64_t files_deduped = 0;    // newly shared and verified
  uint64_t bytes_shared = 0;    // size * files_deduped
  uint64_t bytes_freed = 0;     // of those, space returned (core/freed_space.h)
  int64_t files_already_shared = 0;  // found sharing all extents: no dedupe call needed
  // Files that leave the step without a hash or a dedupe.
  int64_t files_changed = 0;    // not what the index recorded, or changed while read or
                                // deduped: invalidated, they wait again
  int64_t files_skipped = 0;    // refused (kind and detail recorded in the index)
  SkipCounts skipped;           // the same files by kind
  int64_t files_retry_later = 0;  // busy now (EAGAIN: a send runs): left for a later pass
  int64_t files_removed = 0;    // vanished: removed from the index
  // Dry run.
  int64_t groups_planned = 0;   // groups that would be deduped
  int64_t files_planned = 0;    // their destinations
  uint64_t bytes_saveable = 0;  // size * files_planned

  EngineCounts& operator+=(const EngineCounts& other);
};

// One Step(): its kind, what it was about, and its counts (`+=` adds only the counts).
struct StepResult : EngineCounts {
  enum class Kind {
    kHashed,        // members of one size group hashed (read: files_hashed,
                    // prefixes_hashed; or copied: hashes_copied); up to 64 files or 8 MiB
    kHashCopied,    // as kHashed, every hash of the step copied (nothing read)
    kHashSlice,     // one slice of a large file's whole hash (bytes_read): the hash goes
                    // on in the next Step() (EngineOptions::hash_slice_bytes)
    kFileSkipped,   // a file could not be hashed (vanished, unreadable, changed, swap)
    kDedupeBatch,   // one batch of one group processed (counts)
    kPlannedGroup,  // dry run: one group that would be deduped (`planned`)
    kNothingToDo,   // size groups looked at with nothing to do now
    kInterrupted,   // should_stop cut a hash short (nothing recorded) or stopped the run
    kBusy,          // a batch whose destinations were all busy (files_retry_later)
    kIdle,          // the pass is over; nothing to do before `next_eligible`
  };
  Kind kind = Kind::kIdle;
  std::string path;    // the file hashed/skipped, or the group's reference
  std::string detail;  // why a file was skipped, for logs
  uint64_t size = 0;   // size of the file or of the group's files
  std::optional<PlannedGroup> planned;  // kPlannedGroup only
  // kIdle: when the next waiting file becomes eligible; InfiniteFuture if none waits.
  absl::Time next_eligible = absl::InfiniteFuture();

  // The step changed something (a hash, a dedupe state, a skip, a plan): the kinds other
  // than kNothingToDo, kInterrupted, kBusy and kIdle.
  bool MadeProgress() const;
};

// Totals since the engine was made.
struct EngineStats : EngineCounts {
  int64_t steps = 0;
  int64_t passes = 0;  // completed passes (kIdle results)
  // Members of full-hash groups the dedupe planning looked at (a measure of its work,
  // for tests and benches: it grows with the files deduped, not with their square).
  int64_t members_planned = 0;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_STEP_RESULT_H_
