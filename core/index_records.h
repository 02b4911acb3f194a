// The rows VolumeIndex (core/index.h) keeps of a volume's subvolumes and files, and the
// states a file goes through: what the scanner observes (FileObservation), what the index
// holds (FileRecord), and the one rule by which a file still is the content its row
// recorded (SameContent). Plain values; no I/O.

#ifndef BTRDUPD_CORE_INDEX_RECORDS_H_
#define BTRDUPD_CORE_INDEX_RECORDS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "core/skip_kind.h"

namespace btrdupd {

enum class HashState : int {
  kNone = 0,     // never hashed, or the hash was invalidated by a change
  kPrefix = 1,   // `hash` holds the SHA-256 of the first block only (decoy filter)
  kFull = 2,     // `hash` holds the SHA-256 of the whole file
};

enum class DedupeState : int {
  kPending = 0,    // not yet deduped (or needs re-checking)
  kReference = 1,  // chosen as the reference copy of its (size, hash) group
  kDeduped = 2,    // verified by FIEMAP to share all extents with its reference
  kSkipped = 3,    // left alone for good: `skip_kind` says why, `skip_detail` the rest
  // Fully hashed, and no other file of its size has its hash: nothing to do until a new
  // or changed file of its size appears (that file is kPending, so the size has work
  // again and the engine compares it with the kUnique ones). Unlike leaving it kPending,
  // this keeps SizesWithWork from returning the size on every pass.
  kUnique = 4,
  // Found sharing all extents with its reference before any dedupe (a reflink copy, a
  // snapshot's copy, another tool's work): verified by FIEMAP like kDeduped, but
  // btrdupd did nothing to it. Not counted as "shared" (IndexStats::bytes_deduped).
  kAlreadyShared = 5,
};

// The file shares all extents with its reference (FileRecord::reference_id).
inline bool SharesWithReference(DedupeState state) {
  return state == DedupeState::kDeduped || state == DedupeState::kAlreadyShared;
}

struct SubvolumeRecord {
  uint64_t id = 0;            // btrfs subvolume id (5 for the top level)
  std::string path;           // relative to the volume root ("" = the root)
  std::string uuid;           // canonical text form
  std::string parent_uuid;    // "" when not a snapshot
  std::string received_uuid;  // "" when not received
  bool read_only = false;
  uint64_t last_generation = 0;  // generation covered by the last completed pass
  absl::Time last_scan = absl::InfinitePast();
  // Snapshots that share their source's rows (see "Snapshots" below); 0 when the
  // subvolume has rows of its own for every file. Set by SetSnapshotSource only.
  uint64_t source_id = 0;
  uint64_t source_generation = 0;
};

// A file of a snapshot that has no row of its own: the same inode, with the same
// extents, as the source row it was found through (see ImpliedCopies).
struct ImpliedCopy {
  uint64_t subvol_id = 0;
  std::string path;  // relative to the volume root
};

// What a directory walk or a changed-inode lookup saw of one regular file.
struct FileObservation {
  uint64_t subvol_id = 0;
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  // ctime (ns since the epoch), 0 when unknown. Unlike mtime, nobody can set it: every
  // write, chmod, chown, utimensat or rename moves it, a btrfs dedupe does not.
  int64_t ctime_ns = 0;
  uint64_t generation = 0;  // btrfs transid of the inode, or the subvolume's at scan time
  // When the file says it last changed (the later of its mtime and ctime, on the
  // caller's clock); nullopt when unknown. Its stability wait starts there (see
  // ObserveFile).
  std::optional<absl::Time> last_change;
};

struct FileRecord {
  int64_t id = 0;
  int64_t dir_id = 0;
  std::string path;  // full relative path (filled by queries that return records)
  uint64_t subvol_id = 0;
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  // As seen with mtime_ns (FileObservation::ctime_ns); 0 when unknown (a row recorded by
  // a btrdupd before schema version 6 and not changed since).
  int64_t ctime_ns = 0;
  uint64_t generation = 0;
  absl::Time first_seen;
  absl::Time last_changed;  // when its current stability wait started (see ObserveFile)
  absl::Time next_eligible;
  int backoff_level = 0;  // how many times a change was seen while waiting
  HashState hash_state = HashState::kNone;
  // Per hash_state: the file digest (core/hash_stream.h: 16 bytes of SHA-256), "" for
  // kNone. The index stores what it is given.
  std::string hash;
  DedupeState dedupe_state = DedupeState::kPending;
  int64_t reference_id = 0;  // the file it was deduped against, 0 if none
  // kDeduped: when btrdupd deduped it; kAlreadyShared: when it was found sharing.
  // InfinitePast when unknown (recorded by a btrdupd before schema version 4, or with
  // SetDedupeState) and for every other state.
  absl::Time shared_at = absl::InfinitePast();
  // kSkipped only (else kUnknown and ""): why, as a kind, and the detail for people.
  SkipKind skip_kind = SkipKind::kUnknown;
  std::string skip_detail;
};

// Whether a file whose stat or inode item says `size`, `mtime_ns` and `ctime_ns` is still
// the content `row` recorded: size and mtime equal, and ctime too when both sides know
// it. A btrfs dedupe keeps all three; a write moves mtime and ctime, and a rewrite whose
// mtime was set back (utimensat) still moves ctime. A chmod, chown or xattr change moves
// ctime alone and so counts as a change too (the file is hashed again).
inline bool SameContent(const FileRecord& row, uint64_t size, int64_t mtime_ns,
                        int64_t ctime_ns) {
  return row.size == size && row.mtime_ns == mtime_ns &&
         (row.ctime_ns == 0 || ctime_ns == 0 || row.ctime_ns == ctime_ns);
}

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_INDEX_RECORDS_H_
