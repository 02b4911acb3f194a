// VolumeIndex: the SQLite database that remembers one btrfs volume between passes.
//
// One database per volume. It stores the volume's subvolumes (with the generation seen
// last), a directory tree (id, parent, name: a path is stored once per directory, not
// once per file), and one row per tracked regular file with its stability schedule,
// hash and dedupe state. Everything the scanner, the dedupe engine and `--status`
// need goes through this class; no other code runs SQL.
//
// Paths are byte strings relative to the volume root ("" is the root itself), never
// starting or ending with '/'. They may hold any byte but '/' and NUL (no UTF-8
// assumption). Times are absl::Time, stored as whole seconds.
//
// Durability: the database runs with a rollback journal and no memory map (a full
// volume is an error that rolls back, never a SIGBUS). Mutations made between BeginBatch() and
// CommitBatch() form one transaction; outside a batch every mutation is its own
// transaction. A process killed at any moment leaves the last committed state.
//
// Thread-safety: not thread-safe. btrdupd has one processing thread per process.

#ifndef BTRDUPD_CORE_INDEX_H_
#define BTRDUPD_CORE_INDEX_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/index_records.h"
#include "core/skip_kind.h"
#include "core/stability.h"  // StabilityPolicy (moved there so config need not link SQLite)

namespace btrdupd {

// The on-disk schema version this build writes. Older versions are migrated on open;
// a newer or unknown version is refused (FailedPrecondition) and left untouched.
inline constexpr int kIndexSchemaVersion = 6;

// Meta key: decimal total of bytes freed by every dedupe on the volume (IndexStats).
inline constexpr char kBytesFreedMetaKey[] = "bytes_freed";

// One skipped file, for the per-kind view of `--status`.
struct SkippedFile {
  std::string path;  // relative to the volume root
  std::string detail;
  absl::Time skipped_at = absl::InfinitePast();
};

// The skipped files of one kind: how many, and the most recently skipped first.
struct SkipKindSummary {
  SkipKind kind = SkipKind::kUnknown;
  int64_t files = 0;
  std::vector<SkippedFile> recent;
};

struct DirEntryRecord {
  std::string name;
  bool is_dir = false;
  int64_t id = 0;  // dir id or file id
};

// Counters for `--status` and the daemon's status socket.
struct IndexStats {
  int64_t files_tracked = 0;
  int64_t files_hashed = 0;      // kFull
  int64_t files_pending = 0;     // not yet eligible or not yet processed
  int64_t files_waiting = 0;     // of those, still waiting (next_eligible > now)
  int64_t duplicate_groups = 0;  // (size, full hash) groups with >= 2 files
  int64_t files_deduped = 0;
  int64_t files_already_shared = 0;  // kAlreadyShared: found sharing, nothing done
  int64_t files_skipped = 0;
  uint64_t bytes_deduped = 0;    // "shared": sum of sizes of kDeduped files
  // "freed": space btrdupd's dedupes returned on this volume since the database was
  // made (meta kBytesFreedMetaKey, added to by the dedupe engine; core/freed_space.h).
  uint64_t bytes_freed = 0;
  uint64_t bytes_saveable = 0;   // sizes of hashed duplicates not yet deduped
  int64_t database_bytes = 0;
};

// A read-only flag btrdupd cleared and must restore (kept across crashes).
struct ReadOnlyFlip {
  uint64_t subvol_id = 0;
  std::string path;  // relative to the volume root
  absl::Time flipped_at;
};

// For messages: a database path with a leading `/proc/self/fd/N` (a file named through
// a checked directory descriptor, as daemon/volume_open.h does) shown with the directory
// that descriptor names now; any other path as it is.
std::string ShownDatabasePath(absl::string_view path);

// File rows changed since the caller last asked (VolumeIndex::TakeFileChanges).
struct FileChanges {
  // More rows changed than are tracked one by one (kMaxTrackedFileChanges): re-read
  // whatever rows are kept in memory.
  bool overflow = false;
  std::vector<int64_t> ids;  // each id once, in no particular order
};
inline constexpr size_t kMaxTrackedFileChanges = 4096;

class VolumeIndex {
 public:
  // Opens or creates the database file at `db_path` (its directory must exist). The
  // path is used as it is: no symlink in it is resolved by SQLite (so
  // `/proc/self/fd/N/name` opens `name` in the directory descriptor N refers to), and
  // its last component is never followed.
  // With the file left unchanged: DataLoss when it is damaged (not an SQLite file, or
  // shorter than its header says: truncated); FailedPrecondition when it is another
  // application's database or has a newer schema version (see core/index_schema.h).
  // The implementation is SQLite (core/sqlite_index.h); this interface stays abstract so
  // callers can substitute a fake.
  static absl::StatusOr<std::unique_ptr<VolumeIndex>> Open(const std::string& db_path);
  // For queries that must not write (`--status`, `--explain`): a read-only connection
  // that never creates, migrates or converts the file. NotFound when there is no file;
  // DataLoss and FailedPrecondition as Open; FailedPrecondition too for a database of an
  // older schema version (telling the user to run btrdupd once on `volume`, the name
  // used in that message, to upgrade it) and for one a killed writer left mid-
  // transaction (its hot journal must be rolled back by a writer). Every mutation
  // fails on the returned index.
  static absl::StatusOr<std::unique_ptr<VolumeIndex>> OpenReadOnly(
      const std::string& db_path, absl::string_view volume);
  virtual ~VolumeIndex() = default;

  // Checks every page of the database at `db_path` (SQLite's quick_check: reads the
  // whole file once) on a read-only connection; changes nothing. DataLoss naming the
  // first problem when it is damaged; OK when it is sound or there is no file.
  static absl::Status Verify(const std::string& db_path);
  // The read-only flips recorded in a database that may be damaged (read-only
  // connection), to carry into the index that replaces it. An error when even that
  // table cannot be read.
  static absl::StatusOr<std::vector<ReadOnlyFlip>> SalvageReadOnlyFlips(
      const std::string& db_path);

  // --- Transactions ---
  // BeginBatch takes the write lock (BEGIN IMMEDIATE). Batches do not nest
  // (FailedPrecondition); Commit/Rollback without a batch is FailedPrecondition.
  // Destroying the index inside a batch rolls it back.
  virtual absl::Status BeginBatch() = 0;
  virtual absl::Status CommitBatch() = 0;
  virtual absl::Status RollbackBatch() = 0;

  // --- Key/value metadata (times of the last full scan, vacuum, dedupe reset, ...) ---
  virtual absl::StatusOr<std::optional<std::string>> GetMeta(absl::string_view key) = 0;
  virtual absl::Status SetMeta(absl::string_view key, absl::string_view value) = 0;

  // --- Subvolumes ---
  virtual absl::Status UpsertSubvolume(const SubvolumeRecord& subvol) = 0;  // keeps last_*
  virtual absl::StatusOr<std::vector<SubvolumeRecord>> ListSubvolumes() = 0;
  virtual absl::Status SetSubvolumeScanned(uint64_t subvol_id, uint64_t generation,
                                           absl::Time when) = 0;
  // Removes the subvolume and every directory and file recorded under it (the directories
  // whose subvol is `subvol_id` with their whole subtrees). Read-only flips are kept.
  virtual absl::Status RemoveSubvolume(uint64_t subvol_id) = 0;

  // --- Snapshots ---
  // A snapshot taken of an indexed subvolume holds, for every file unchanged in both since
  // the snapshot was taken, the same inode with the same extents. Such files need no rows:
  // a snapshot linked to its source (SetSnapshotSource) has rows only for the inodes where
  // it differs (MarkSnapshotDiffers), and every source row r with r.generation <=
  // source_generation and no difference recorded stands for the snapshot's copy at the
  // same path below the snapshot (an ImpliedCopy). Chains (a snapshot of a snapshot) are
  // followed. The index keeps this true by itself: before a source row changes (ObserveFile
  // with a change, InvalidateFile) or goes (RemoveFile, RemoveDir, RemoveSubvolume), its
  // implied copies get rows of their own (same hash, hash state and dedupe state, marked
  // as differing), so the work is in proportion to what differs. Removing a snapshot that
  // others are linked to hands its rows and differences down to them.
  //
  // Links `subvol_id` to `source_id` compared at the source's generation
  // `source_generation`; source_id 0 unlinks it (and forgets its differences).
  virtual absl::Status SetSnapshotSource(uint64_t subvol_id, uint64_t source_id,
                                         uint64_t source_generation) = 0;
  // Records that the linked snapshot `subvol_id` differs from its source at inode `ino`.
  virtual absl::Status MarkSnapshotDiffers(uint64_t subvol_id, uint64_t ino) = 0;
  // The implied copies of `file` in the snapshots linked to its subvolume (and theirs).
  virtual absl::StatusOr<std::vector<ImpliedCopy>> ImpliedCopies(const FileRecord& file) = 0;

  // --- Directories ---
  // The id of the directory at `path` ("" = volume root, id 1), creating missing rows.
  // The last component gets (subvol_id, ino) (updated if the row had others; ino 0 =
  // unknown); intermediate directories created on the way get their parent's subvolume
  // and an unknown inode until EnsureDir is called for them.
  virtual absl::StatusOr<int64_t> EnsureDir(absl::string_view path, uint64_t subvol_id,
                                            uint64_t ino) = 0;
  // The directory recorded for (subvolume, inode), if any.
  virtual absl::StatusOr<std::optional<int64_t>> FindDirByInode(uint64_t subvol_id,
                                                                uint64_t ino) = 0;
  virtual absl::StatusOr<std::string> DirPath(int64_t dir_id) = 0;
  // Immediate children recorded under `dir_id`: subdirectories first, then files, each
  // in byte order of their names. NotFound if `dir_id` does not exist.
  virtual absl::StatusOr<std::vector<DirEntryRecord>> ListDir(int64_t dir_id) = 0;
  // Removes the directory, its subdirectories and their files (for the root: everything
  // under it, the root row itself stays). Files deduped against a removed file go back
  // to kPending.
  virtual absl::Status RemoveDir(int64_t dir_id) = 0;

  // --- Files ---
  // Records what was seen of `name` in `dir_id` at `now`. Returns the file id.
  // The stability wait starts at the file's own last change, `start` =
  // min(seen.last_change, now) (`now` when unknown), so a file unchanged for days is
  // eligible when first seen and one written a minute ago waits the rest of its wait.
  //  - New file: first_seen = last_changed = now, backoff level 0,
  //    next_eligible = start + policy.initial_wait.
  //  - Changed (size, mtime, ctime when both are known, inode, subvolume or generation
  //    differ from the row), whether
  //    still waiting or not: level + 1, last_changed = start, next_eligible = start +
  //    min(initial_wait * 2^level, max_backoff) (WaitForLevel in core/stability.h); it
  //    loses hash, dedupe state, reference and skip reason. Files deduped against it
  //    (reference_id == its id) go back to kPending (reference gone; FIEMAP re-checks).
  //    A change whose `start` is not later than the row's last_changed (its times kept
  //    or set back; the generation or size says it changed) starts its wait at `now`.
  //  - Unchanged: nothing is written (one indexed lookup).
  // Backoff decay: the level returns to 0 when the file is processed, i.e. on
  // SetHash(kFull) or SetDedupeState(anything but kPending); a file that keeps changing
  // before it is ever processed keeps doubling up to the cap.
  // NotFound if `dir_id` does not exist; InvalidArgument for a name with '/' or NUL.
  virtual absl::StatusOr<int64_t> ObserveFile(int64_t dir_id, absl::string_view name,
                                              const FileObservation& seen, absl::Time now,
                                              const StabilityPolicy& policy) = 0;
  // Removes the row (no-op if absent); files deduped against it go back to kPending.
  virtual absl::Status RemoveFile(int64_t file_id) = 0;
  // The file recorded as `name` in `dir_id`, if any (path filled in).
  virtual absl::StatusOr<std::optional<FileRecord>> FindFile(int64_t dir_id,
                                                             absl::string_view name) = 0;
  virtual absl::StatusOr<std::optional<FileRecord>> GetFile(int64_t file_id) = 0;
  virtual absl::StatusOr<std::vector<FileRecord>> FindFilesByInode(uint64_t subvol_id,
                                                                   uint64_t ino) = 0;

  // --- Work queues for the dedupe engine ---
  // Sizes >= min_size that at least two tracked files share, where at least one of them
  // is eligible (next_eligible <= now) and kPending. Ascending. Cost: one pass over the
  // eligible kPending files (index files_pending) with one index probe each, so call it
  // when something became eligible or changed, not in an idle loop.
  virtual absl::StatusOr<std::vector<uint64_t>> SizesWithWork(uint64_t min_size,
                                                              absl::Time now) = 0;
  // All tracked files of exactly `size`, with paths.
  virtual absl::StatusOr<std::vector<FileRecord>> FilesOfSize(uint64_t size) = 0;
  // The earliest next_eligible among kPending files not yet eligible at `now` (for
  // sleeping); nullopt when none waits. O(log n).
  virtual absl::StatusOr<std::optional<absl::Time>> NextEligibleAfter(absl::Time now) = 0;
  // Ends the stability wait of every kPending file still waiting at `now`: its
  // next_eligible becomes `now` (last_changed and backoff level are kept). For one-shot
  // `--no-wait`, where the user says every current file is stable.
  virtual absl::Status EndStabilityWaits(absl::Time now) = 0;
  // Clock steps: no kPending file waits longer than `now` plus the wait of its backoff
  // level under `policy` (WaitForLevel). A next_eligible stored beyond that bound (written
  // before the wall clock was stepped back, so the file would wait the size of the step
  // longer; or under a longer configured wait) is set to the bound; last_changed and the
  // level are kept. A clock stepped forward needs nothing: those waits are simply over.
  // Returns how many files were brought back. Cost: one range scan of files_pending over
  // the files that wait longer than the shortest wait (none after a step back of 0).
  virtual absl::StatusOr<int64_t> ClampStabilityWaits(absl::Time now,
                                                      const StabilityPolicy& policy) = 0;

  // `hash` must be empty for kNone and non-empty otherwise. kFull resets the backoff
  // level to 0. NotFound if no such file.
  virtual absl::Status SetHash(int64_t file_id, HashState state,
                               absl::string_view hash) = 0;
  // Forgets the hash and dedupe state; the file waits `policy` again (it changed), with
  // its backoff level raised as in ObserveFile; its dependents go back to kPending.
  virtual absl::Status InvalidateFile(int64_t file_id, absl::Time now,
                                      const StabilityPolicy& policy) = 0;
  // reference_id 0 stores "none"; clears any skip kind and detail and the sharing time
  // (a kDeduped or kAlreadyShared set here has an unknown shared_at: use RecordSharing).
  // Any state but kPending resets the backoff level to 0. NotFound if no such file.
  virtual absl::Status SetDedupeState(int64_t file_id, DedupeState state,
                                      int64_t reference_id) = 0;
  // The file shares all extents with `reference_id` since `when`: `state` kDeduped
  // (btrdupd deduped it) or kAlreadyShared (found sharing; InvalidArgument for any other
  // state). A file btrdupd itself deduped keeps that, and its time, while it does not
  // change: kAlreadyShared recorded on a kDeduped row, or on a kPending one that was
  // kDeduped before its reference went away or ResetDedupeStates, stays kDeduped with
  // its dedupe time (its extents are btrdupd's work), and takes the new reference.
  // Clears skip kind and detail, resets the backoff level. NotFound if no such file.
  virtual absl::Status RecordSharing(int64_t file_id, DedupeState state,
                                     int64_t reference_id, absl::Time when) = 0;
  // kSkipped, with why (`kind`, and `detail` for people) and when. Resets the backoff
  // level. NotFound if no such file.
  virtual absl::Status RecordSkip(int64_t file_id, SkipKind kind, absl::string_view detail,
                                  absl::Time now) = 0;
  // Forgets every dedupe state, reference and skip reason (hashes kept): everything is
  // re-verified by FIEMAP. The dedupe time of kDeduped files is kept (RecordSharing).
  virtual absl::Status ResetDedupeStates() = 0;

  // --- Read-only flips (restored on every path, including the next start) ---
  virtual absl::Status RecordReadOnlyFlip(const ReadOnlyFlip& flip) = 0;
  virtual absl::Status ClearReadOnlyFlip(uint64_t subvol_id) = 0;
  virtual absl::StatusOr<std::vector<ReadOnlyFlip>> PendingReadOnlyFlips() = 0;

  // --- Change tracking, for callers that keep file rows in memory between calls ---
  // The ids of the file rows inserted, changed or deleted by any method of this index
  // (whoever called it) since the previous call; rows changed by a transaction that
  // was then rolled back are included too (re-reading them gives the current row).
  // O(ids). Tracking starts when the index is opened.
  virtual FileChanges TakeFileChanges() = 0;
  // File rows read from the database by queries since the index was opened (tests and
  // benchmarks check that the work on a size group grows linearly with it).
  virtual int64_t FileRowsRead() const = 0;

  // --- Maintenance and statistics ---
  // Counters over all files (one table pass); database_bytes = page_count * page_size.
  virtual absl::StatusOr<IndexStats> Stats(absl::Time now) = 0;
  // The skipped files by kind (only kinds with files, in SkipKind order), each with its
  // `recent_per_kind` most recently skipped files. Reads only the skipped rows.
  virtual absl::StatusOr<std::vector<SkipKindSummary>> SkippedByKind(int recent_per_kind) = 0;
  // Rewrites the file compactly. FailedPrecondition in a batch.
  virtual absl::Status Vacuum() = 0;
  // The database file's size and how much of it is free pages (left by deleted rows
  // and dropped indexes; only Vacuum gives them back). Two PRAGMAs: cheap.
  struct FileSpace {
    int64_t bytes = 0;
    int64_t free_bytes = 0;
  };
  virtual absl::StatusOr<FileSpace> Space() = 0;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_INDEX_H_
