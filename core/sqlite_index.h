// SqliteVolumeIndex: the SQLite implementation of VolumeIndex (core/index.h).
// Private to core/: everyone else holds a VolumeIndex from VolumeIndex::Open().
//
// Implementation notes (the contract is in core/index.h):
//  - one connection, statements prepared once and cached (core/sqlite_statement.h);
//  - a mutation made of several statements runs inside a SAVEPOINT, so it is atomic
//    both inside a caller's batch and on its own;
//  - the schema and its migrations live in core/index_schema.cc.
// The methods are split by table: sqlite_index.cc (open, batches, metadata, subvolumes,
// read-only flips, maintenance), sqlite_index_dirs.cc (directories),
// sqlite_index_files.cc (files as scanned), sqlite_index_work.cc (hash and dedupe
// states, the engine's work queues, the statistics), sqlite_index_skips.cc,
// sqlite_index_snapshots.cc, sqlite_index_damage.cc.

#ifndef BTRDUPD_CORE_SQLITE_INDEX_H_
#define BTRDUPD_CORE_SQLITE_INDEX_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "core/index.h"
#include "core/sqlite_statement.h"

namespace btrdupd {

// InvalidArgument unless `name` can be one path component of a `what` ("file",
// "directory"): not empty, not . or .., no '/' or NUL.
absl::Status CheckEntryName(absl::string_view name, absl::string_view what);

// NotFound for a file id without a row.
absl::Status NoSuchFile(int64_t file_id);

// files.backoff (how many changes in a row lengthened the stability wait) is stored
// capped at this.
inline constexpr int kMaxStoredBackoff = 64;

class SqliteVolumeIndex : public VolumeIndex {
 public:
  explicit SqliteVolumeIndex(std::unique_ptr<SqliteDb> db);
  ~SqliteVolumeIndex() override;

  absl::Status BeginBatch() override;
  absl::Status CommitBatch() override;
  absl::Status RollbackBatch() override;

  absl::StatusOr<std::optional<std::string>> GetMeta(absl::string_view key) override;
  absl::Status SetMeta(absl::string_view key, absl::string_view value) override;

  absl::Status UpsertSubvolume(const SubvolumeRecord& subvol) override;
  absl::StatusOr<std::vector<SubvolumeRecord>> ListSubvolumes() override;
  absl::Status SetSubvolumeScanned(uint64_t subvol_id, uint64_t generation,
                                   absl::Time when) override;
  absl::Status RemoveSubvolume(uint64_t subvol_id) override;

  absl::Status SetSnapshotSource(uint64_t subvol_id, uint64_t source_id,
                                 uint64_t source_generation) override;
  absl::Status MarkSnapshotDiffers(uint64_t subvol_id, uint64_t ino) override;
  absl::StatusOr<std::vector<ImpliedCopy>> ImpliedCopies(const FileRecord& file) override;

  absl::StatusOr<int64_t> EnsureDir(absl::string_view path, uint64_t subvol_id,
                                    uint64_t ino) override;
  absl::StatusOr<std::optional<int64_t>> FindDirByInode(uint64_t subvol_id,
                                                        uint64_t ino) override;
  absl::StatusOr<std::string> DirPath(int64_t dir_id) override;
  absl::StatusOr<std::vector<DirEntryRecord>> ListDir(int64_t dir_id) override;
  absl::Status RemoveDir(int64_t dir_id) override;

  absl::StatusOr<int64_t> ObserveFile(int64_t dir_id, absl::string_view name,
                                      const FileObservation& seen, absl::Time now,
                                      const StabilityPolicy& policy) override;
  absl::Status RemoveFile(int64_t file_id) override;
  absl::StatusOr<std::optional<FileRecord>> FindFile(int64_t dir_id,
                                                     absl::string_view name) override;
  absl::StatusOr<std::optional<FileRecord>> GetFile(int64_t file_id) override;
  absl::StatusOr<std::vector<FileRecord>> FindFilesByInode(uint64_t subvol_id,
                                                           uint64_t ino) override;

  absl::StatusOr<std::vector<uint64_t>> SizesWithWork(uint64_t min_size,
                                                      absl::Time now) override;
  absl::StatusOr<std::vector<FileRecord>> FilesOfSize(uint64_t size) override;
  absl::StatusOr<std::optional<absl::Time>> NextEligibleAfter(absl::Time now) override;
  absl::Status EndStabilityWaits(absl::Time now) override;
  absl::StatusOr<int64_t> ClampStabilityWaits(absl::Time now,
                                              const StabilityPolicy& policy) override;

  absl::Status SetHash(int64_t file_id, HashState state, absl::string_view hash) override;
  absl::Status InvalidateFile(int64_t file_id, absl::Time now,
                              const StabilityPolicy& policy) override;
  absl::Status SetDedupeState(int64_t file_id, DedupeState state,
                              int64_t reference_id) override;
  absl::Status RecordSharing(int64_t file_id, DedupeState state, int64_t reference_id,
                             absl::Time when) override;
  absl::Status RecordSkip(int64_t file_id, SkipKind kind, absl::string_view detail,
                          absl::Time now) override;
  absl::Status ResetDedupeStates() override;

  FileChanges TakeFileChanges() override;
  int64_t FileRowsRead() const override { return file_rows_read_; }

  absl::Status RecordReadOnlyFlip(const ReadOnlyFlip& flip) override;
  absl::Status ClearReadOnlyFlip(uint64_t subvol_id) override;
  absl::StatusOr<std::vector<ReadOnlyFlip>> PendingReadOnlyFlips() override;

  absl::StatusOr<IndexStats> Stats(absl::Time now) override;
  absl::StatusOr<std::vector<SkipKindSummary>> SkippedByKind(int recent_per_kind) override;
  absl::Status Vacuum() override;
  absl::StatusOr<FileSpace> Space() override;

 private:
  // The INSERT of RecordReadOnlyFlip, without the durability around it.
  absl::Status InsertReadOnlyFlip(const ReadOnlyFlip& flip);
  // Runs `body` inside SAVEPOINT; rolled back to it if `body` fails.
  absl::Status Atomically(const std::function<absl::Status()>& body);
  // Path of a directory, memoized in `memo` for the duration of one query.
  absl::StatusOr<std::string> DirPathMemo(int64_t dir_id,
                                          absl::flat_hash_map<int64_t, std::string>* memo);
  // Reads a FileRecord from a statement that selected the FILE_COLUMNS (index.cc).
  absl::StatusOr<FileRecord> ReadFile(const Statement& row,
                                      absl::flat_hash_map<int64_t, std::string>* memo);
  absl::StatusOr<std::vector<FileRecord>> ReadFiles(Statement& query);
  // Drops the subtree of directories listed in temp.doomed and every file in them.
  // Fills temp.doomed by running `collect_sql` (one of the statements in
  // sqlite_index.cc) with ?1 = key.
  absl::Status CollectDoomedDirs(const char* collect_sql, int64_t key);
  absl::Status DeleteDoomedDirs();
  // Files whose reference no longer exists (or is `gone_id`) go back to pending.
  absl::Status ReleaseDependents(int64_t gone_id);
  absl::Status ReleaseOrphanedDependents();

  // Snapshots (sqlite_index_snapshots.cc).
  struct Dependent {
    uint64_t id = 0;
    std::string path;
    uint64_t source_generation = 0;
  };
  absl::StatusOr<std::vector<Dependent>> Dependents(uint64_t source_id);
  absl::StatusOr<bool> SnapshotDiffers(uint64_t subvol_id, uint64_t ino);
  absl::StatusOr<std::optional<std::string>> SubvolumePath(uint64_t subvol_id);
  absl::StatusOr<int64_t> EnsureSnapshotDir(absl::string_view path, uint64_t subvol_id);
  absl::Status CopyRowInto(const FileRecord& row, uint64_t subvol_id, const std::string& path);
  // Gives the implied copies of `row` (or of the file `file_id`) rows of their own; call
  // before the row changes or goes.
  absl::Status MaterializeCopies(const FileRecord& row);
  absl::Status MaterializeCopiesOf(int64_t file_id);
  // The same for every file in temp.doomed's directories.
  absl::Status MaterializeDoomedCopies();
  // Re-links the snapshots linked to `subvol_id` (about to go) to its own source.
  absl::Status HandDownSnapshot(uint64_t subvol_id);

  std::unique_ptr<SqliteDb> db_;
  StatementCache statements_;
  bool in_batch_ = false;
  // Filled by SQLite's update hook (every insert, update and delete of a files row).
  static void OnRowChange(void* self, int op, const char* db, const char* table,
                          sqlite3_int64 rowid);
  absl::flat_hash_set<int64_t> changed_files_;
  bool changed_overflow_ = false;
  int64_t file_rows_read_ = 0;
};

// The columns every file query selects, in the order ReadFile() expects.
#define BTRDUPD_FILE_COLUMNS                                                         \
  "id, dir, name, subvol, ino, size, mtime, gen, first_seen, last_changed, "         \
  "next_eligible, backoff, hash_state, hash, dedupe_state, ref, skip, skip_kind, shared_at, " \
  "ctime_delta"

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_SQLITE_INDEX_H_
