// VolumeIndex::Open and the SqliteVolumeIndex methods that are not about files or
// directories: batches, metadata, subvolumes, read-only flips, maintenance.

#include "core/sqlite_index.h"

#include <cstring>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/index_schema.h"
#include "core/status_macros.h"

namespace btrdupd {
namespace {

// temp.doomed <- the directories a removal takes: the seed rows and all below them.
constexpr char kDirsOfSubvolume[] =
    "INSERT OR IGNORE INTO temp.doomed(id) "
    "WITH RECURSIVE sub(id) AS ("
    "  SELECT id FROM dirs WHERE subvol = ?1"
    "  UNION SELECT d.id FROM dirs d JOIN sub ON d.parent = sub.id)"
    " SELECT id FROM sub";

absl::Time FromSeconds(int64_t s) { return absl::FromUnixSeconds(s); }

}  // namespace

absl::StatusOr<std::unique_ptr<VolumeIndex>> VolumeIndex::Open(const std::string& db_path) {
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, OpenIndexDatabase(db_path));
  // Scratch space for subtree deletions (per connection, never on disk).
  RETURN_IF_ERROR(db->Exec("CREATE TEMP TABLE IF NOT EXISTS doomed(id INTEGER PRIMARY KEY)"));
  return std::unique_ptr<VolumeIndex>(new SqliteVolumeIndex(std::move(db)));
}

absl::StatusOr<std::unique_ptr<VolumeIndex>> VolumeIndex::OpenReadOnly(
    const std::string& db_path, absl::string_view volume) {
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, OpenIndexDatabaseReadOnly(db_path, volume));
  return std::unique_ptr<VolumeIndex>(new SqliteVolumeIndex(std::move(db)));
}

SqliteVolumeIndex::SqliteVolumeIndex(std::unique_ptr<SqliteDb> db)
    : db_(std::move(db)), statements_(db_.get()) {
  sqlite3_update_hook(db_->get(), &SqliteVolumeIndex::OnRowChange, this);
}

SqliteVolumeIndex::~SqliteVolumeIndex() {
  if (in_batch_) db_->Exec("ROLLBACK").IgnoreError();
  statements_.Clear();
  sqlite3_update_hook(db_->get(), nullptr, nullptr);
}

// --- Change tracking ---

void SqliteVolumeIndex::OnRowChange(void* self, int /*op*/, const char* /*db*/,
                                    const char* table, sqlite3_int64 rowid) {
  auto* index = static_cast<SqliteVolumeIndex*>(self);
  if (index->changed_overflow_ || std::strcmp(table, "files") != 0) return;
  index->changed_files_.insert(rowid);
  if (index->changed_files_.size() > kMaxTrackedFileChanges) {
    index->changed_overflow_ = true;
    index->changed_files_.clear();
  }
}

FileChanges SqliteVolumeIndex::TakeFileChanges() {
  FileChanges out;
  out.overflow = changed_overflow_;
  out.ids.assign(changed_files_.begin(), changed_files_.end());
  changed_files_.clear();
  changed_overflow_ = false;
  return out;
}

// --- Transactions ---

absl::Status SqliteVolumeIndex::BeginBatch() {
  if (in_batch_) return absl::FailedPreconditionError("index: BeginBatch inside a batch");
  RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  in_batch_ = true;
  return absl::OkStatus();
}

absl::Status SqliteVolumeIndex::CommitBatch() {
  if (!in_batch_) return absl::FailedPreconditionError("index: CommitBatch without a batch");
  RETURN_IF_ERROR(db_->Exec("COMMIT"));
  in_batch_ = false;
  return absl::OkStatus();
}

absl::Status SqliteVolumeIndex::RollbackBatch() {
  if (!in_batch_) {
    return absl::FailedPreconditionError("index: RollbackBatch without a batch");
  }
  in_batch_ = false;
  if (sqlite3_get_autocommit(db_->get())) return absl::OkStatus();  // already undone
  return db_->Exec("ROLLBACK");
}

absl::Status SqliteVolumeIndex::Atomically(const std::function<absl::Status()>& body) {
  RETURN_IF_ERROR(db_->Exec("SAVEPOINT btrdupd_op"));
  absl::Status status = body();
  if (status.ok()) status = db_->Exec("RELEASE btrdupd_op");
  if (!status.ok()) {
    db_->Exec("ROLLBACK TO btrdupd_op").IgnoreError();
    db_->Exec("RELEASE btrdupd_op").IgnoreError();
  }
  return status;
}

// --- Metadata ---

absl::StatusOr<std::optional<std::string>> SqliteVolumeIndex::GetMeta(
    absl::string_view key) {
  ASSIGN_OR_RETURN(Statement q, statements_.Get("SELECT value FROM meta WHERE key = ?1"));
  q.BindText(1, key);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(q.ColumnBlob(0));
}

absl::Status SqliteVolumeIndex::SetMeta(absl::string_view key, absl::string_view value) {
  ASSIGN_OR_RETURN(Statement q,
                     statements_.Get("INSERT INTO meta(key, value) VALUES (?1, ?2) "
                                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
  q.BindText(1, key).BindText(2, value);
  return q.Run();
}

// --- Subvolumes ---

absl::Status SqliteVolumeIndex::UpsertSubvolume(const SubvolumeRecord& subvol) {
  ASSIGN_OR_RETURN(
      Statement q,
      statements_.Get("INSERT INTO subvols(id, path, uuid, parent_uuid, received_uuid, "
                      "read_only) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
                      "ON CONFLICT(id) DO UPDATE SET path = excluded.path, "
                      "uuid = excluded.uuid, parent_uuid = excluded.parent_uuid, "
                      "received_uuid = excluded.received_uuid, "
                      "read_only = excluded.read_only"));
  q.Bind(1, static_cast<int64_t>(subvol.id))
      .BindBlob(2, subvol.path)
      .BindText(3, subvol.uuid)
      .BindText(4, subvol.parent_uuid)
      .BindText(5, subvol.received_uuid)
      .Bind(6, subvol.read_only ? 1 : 0);
  return q.Run();
}

absl::StatusOr<std::vector<SubvolumeRecord>> SqliteVolumeIndex::ListSubvolumes() {
  ASSIGN_OR_RETURN(
      Statement q,
      statements_.Get("SELECT id, path, uuid, parent_uuid, received_uuid, read_only, "
                      "last_generation, last_scan, source, source_gen FROM subvols "
                      "ORDER BY id"));
  std::vector<SubvolumeRecord> out;
  RETURN_IF_ERROR(q.ForEachRow([&]() -> absl::Status {
    SubvolumeRecord s;
    s.id = static_cast<uint64_t>(q.ColumnInt(0));
    s.path = q.ColumnBlob(1);
    s.uuid = q.ColumnBlob(2);
    s.parent_uuid = q.ColumnBlob(3);
    s.received_uuid = q.ColumnBlob(4);
    s.read_only = q.ColumnInt(5) != 0;
    s.last_generation = static_cast<uint64_t>(q.ColumnInt(6));
    s.last_scan = q.ColumnIsNull(7) ? absl::InfinitePast() : FromSeconds(q.ColumnInt(7));
    s.source_id = static_cast<uint64_t>(q.ColumnInt(8));
    s.source_generation = static_cast<uint64_t>(q.ColumnInt(9));
    out.push_back(std::move(s));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteVolumeIndex::SetSubvolumeScanned(uint64_t subvol_id, uint64_t generation,
                                                    absl::Time when) {
  ASSIGN_OR_RETURN(Statement q,
                     statements_.Get("UPDATE subvols SET last_generation = ?2, "
                                     "last_scan = ?3 WHERE id = ?1"));
  q.Bind(1, static_cast<int64_t>(subvol_id))
      .Bind(2, static_cast<int64_t>(generation))
      .Bind(3, absl::ToUnixSeconds(when));
  return q.RunOnExistingRow(absl::StrCat("index: subvolume ", subvol_id, " is not recorded"));
}

absl::Status SqliteVolumeIndex::RemoveSubvolume(uint64_t subvol_id) {
  return Atomically([&]() -> absl::Status {
    RETURN_IF_ERROR(HandDownSnapshot(subvol_id));
    {
      ASSIGN_OR_RETURN(Statement diff,
                         statements_.Get("DELETE FROM snap_diff WHERE subvol = ?1"));
      diff.Bind(1, static_cast<int64_t>(subvol_id));
      RETURN_IF_ERROR(diff.Run());
    }
    RETURN_IF_ERROR(CollectDoomedDirs(kDirsOfSubvolume, static_cast<int64_t>(subvol_id)));
    {
      ASSIGN_OR_RETURN(Statement files,
                         statements_.Get("DELETE FROM files WHERE subvol = ?1"));
      files.Bind(1, static_cast<int64_t>(subvol_id));
      RETURN_IF_ERROR(files.Run());
    }
    RETURN_IF_ERROR(DeleteDoomedDirs());
    {
      ASSIGN_OR_RETURN(Statement row, statements_.Get("DELETE FROM subvols WHERE id = ?1"));
      row.Bind(1, static_cast<int64_t>(subvol_id));
      RETURN_IF_ERROR(row.Run());
    }
    return ReleaseOrphanedDependents();
  });
}

// --- Read-only flips ---

absl::Status SqliteVolumeIndex::RecordReadOnlyFlip(const ReadOnlyFlip& flip) {
  // The record must be on disk before the flag is cleared, even if the power fails
  // right after (the database runs with synchronous=OFF otherwise).
  if (in_batch_) {
    return absl::FailedPreconditionError("index: RecordReadOnlyFlip inside a batch");
  }
  RETURN_IF_ERROR(db_->Exec("PRAGMA synchronous=FULL"));
  absl::Status recorded = InsertReadOnlyFlip(flip);
  absl::Status restored = db_->Exec("PRAGMA synchronous=OFF");
  RETURN_IF_ERROR(recorded);
  return restored;
}

absl::Status SqliteVolumeIndex::InsertReadOnlyFlip(const ReadOnlyFlip& flip) {
  ASSIGN_OR_RETURN(Statement q,
                     statements_.Get("INSERT OR REPLACE INTO ro_flips(subvol, path, "
                                     "flipped_at) VALUES (?1, ?2, ?3)"));
  q.Bind(1, static_cast<int64_t>(flip.subvol_id))
      .BindBlob(2, flip.path)
      .Bind(3, absl::ToUnixSeconds(flip.flipped_at));
  return q.Run();
}

absl::Status SqliteVolumeIndex::ClearReadOnlyFlip(uint64_t subvol_id) {
  ASSIGN_OR_RETURN(Statement q, statements_.Get("DELETE FROM ro_flips WHERE subvol = ?1"));
  q.Bind(1, static_cast<int64_t>(subvol_id));
  return q.Run();
}

absl::StatusOr<std::vector<ReadOnlyFlip>> SqliteVolumeIndex::PendingReadOnlyFlips() {
  ASSIGN_OR_RETURN(Statement q, statements_.Get("SELECT subvol, path, flipped_at "
                                                  "FROM ro_flips ORDER BY subvol"));
  std::vector<ReadOnlyFlip> out;
  RETURN_IF_ERROR(q.ForEachRow([&]() -> absl::Status {
    out.push_back(ReadOnlyFlip{static_cast<uint64_t>(q.ColumnInt(0)), q.ColumnBlob(1),
                               FromSeconds(q.ColumnInt(2))});
    return absl::OkStatus();
  }));
  return out;
}

// --- Maintenance ---

absl::Status SqliteVolumeIndex::Vacuum() {
  if (in_batch_) return absl::FailedPreconditionError("index: Vacuum inside a batch");
  statements_.Clear();  // no statement may be pending while VACUUM rewrites the file
  // VACUUM builds the new file through a temporary database with the page cache size
  // of this connection, on top of this connection's own cache: with the cache shrunk
  // first (which frees its pages), the copy reuses that memory and a VACUUM does not
  // raise the process's peak memory. The copy reads and writes in order, so a small
  // cache costs it nothing.
  RETURN_IF_ERROR(db_->Exec(absl::StrCat("PRAGMA cache_size=-", kVacuumCacheKiB).c_str()));
  absl::Status vacuumed = db_->Exec("VACUUM");
  absl::Status restored =
      db_->Exec(absl::StrCat("PRAGMA cache_size=-", kIndexCacheKiB).c_str());
  return vacuumed.ok() ? restored : vacuumed;
}

absl::StatusOr<VolumeIndex::FileSpace> SqliteVolumeIndex::Space() {
  ASSIGN_OR_RETURN(int64_t pages, db_->QueryInt("PRAGMA page_count"));
  ASSIGN_OR_RETURN(int64_t free_pages, db_->QueryInt("PRAGMA freelist_count"));
  ASSIGN_OR_RETURN(int64_t page_size, db_->QueryInt("PRAGMA page_size"));
  FileSpace space;
  space.bytes = pages * page_size;
  space.free_bytes = free_pages * page_size;
  return space;
}

}  // namespace btrdupd
