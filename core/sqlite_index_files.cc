// SqliteVolumeIndex: files as the scanner records them - rows observed, read, found,
// removed (and the dependents a removed reference releases).

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/index_schema.h"
#include "core/sqlite_index.h"
#include "core/status_macros.h"

namespace btrdupd {
namespace {

// files.ctime_delta (core/index_schema.cc, version 6): ctime - mtime, NULL when the ctime
// is unknown. Users set file times at will (utimensat takes any 64-bit seconds), so the
// difference wraps instead of overflowing; CtimeOf undoes it exactly.
int64_t CtimeDelta(int64_t ctime_ns, int64_t mtime_ns) {
  return static_cast<int64_t>(static_cast<uint64_t>(ctime_ns) - static_cast<uint64_t>(mtime_ns));
}
int64_t CtimeOf(int64_t mtime_ns, int64_t delta) {
  return static_cast<int64_t>(static_cast<uint64_t>(mtime_ns) + static_cast<uint64_t>(delta));
}

void BindCtimeDelta(Statement& q, int param, const FileObservation& seen) {
  if (seen.ctime_ns == 0) {
    q.BindNull(param);
  } else {
    q.Bind(param, CtimeDelta(seen.ctime_ns, seen.mtime_ns));
  }
}

}  // namespace

absl::Status NoSuchFile(int64_t file_id) {
  return absl::NotFoundError(absl::StrCat("index: no file with id ", file_id));
}

absl::StatusOr<FileRecord> SqliteVolumeIndex::ReadFile(
    const Statement& q, absl::flat_hash_map<int64_t, std::string>* memo) {
  ++file_rows_read_;
  FileRecord f;
  f.id = q.ColumnInt(0);
  f.dir_id = q.ColumnInt(1);
  const std::string name = q.ColumnBlob(2);
  ASSIGN_OR_RETURN(std::string dir, DirPathMemo(f.dir_id, memo));
  f.path = dir.empty() ? name : absl::StrCat(dir, "/", name);
  f.subvol_id = static_cast<uint64_t>(q.ColumnInt(3));
  f.ino = static_cast<uint64_t>(q.ColumnInt(4));
  f.size = static_cast<uint64_t>(q.ColumnInt(5));
  f.mtime_ns = q.ColumnInt(6);
  f.generation = static_cast<uint64_t>(q.ColumnInt(7));
  f.first_seen = absl::FromUnixSeconds(q.ColumnInt(8));
  // NULL while the file never changed since first seen (saves 4 bytes a row).
  f.last_changed = q.ColumnIsNull(9) ? f.first_seen : absl::FromUnixSeconds(q.ColumnInt(9));
  f.next_eligible = absl::FromUnixSeconds(q.ColumnInt(10));
  f.backoff_level = static_cast<int>(q.ColumnInt(11));
  f.hash_state = static_cast<HashState>(q.ColumnInt(12));
  f.hash = q.ColumnBlob(13);
  f.dedupe_state = static_cast<DedupeState>(q.ColumnInt(14));
  f.reference_id = q.ColumnInt(15);
  f.skip_detail = q.ColumnBlob(16);
  if (f.dedupe_state == DedupeState::kSkipped) {
    f.skip_kind = SkipKindFromNumber(q.ColumnInt(17)).value_or(SkipKind::kUnknown);
  }
  // Kept on a kPending row that btrdupd deduped (RecordSharing); shown for sharing only.
  if (SharesWithReference(f.dedupe_state) && !q.ColumnIsNull(18)) {
    f.shared_at = absl::FromUnixSeconds(q.ColumnInt(18));
  }
  if (!q.ColumnIsNull(19)) f.ctime_ns = CtimeOf(f.mtime_ns, q.ColumnInt(19));
  return f;
}

absl::StatusOr<std::vector<FileRecord>> SqliteVolumeIndex::ReadFiles(Statement& q) {
  absl::flat_hash_map<int64_t, std::string> memo;
  std::vector<FileRecord> out;
  RETURN_IF_ERROR(q.ForEachRow([&]() -> absl::Status {
    ASSIGN_OR_RETURN(FileRecord f, ReadFile(q, &memo));
    out.push_back(std::move(f));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<int64_t> SqliteVolumeIndex::ObserveFile(int64_t dir_id,
                                                       absl::string_view name,
                                                       const FileObservation& seen,
                                                       absl::Time now,
                                                       const StabilityPolicy& policy) {
  RETURN_IF_ERROR(CheckEntryName(name, "file"));
  int64_t id = 0;
  int level = 0;
  // The wait runs from the file's own last change (never from the future), so a file
  // that has not changed for a long time is eligible as soon as it is first seen.
  absl::Time start = now;
  if (seen.last_change.has_value() && *seen.last_change < now) start = *seen.last_change;
  {
    ASSIGN_OR_RETURN(Statement find,
                     statements_.Get("SELECT id, subvol, ino, size, mtime, gen, backoff, "
                                     "coalesce(last_changed, first_seen), ctime_delta "
                                       "FROM files WHERE dir = ?1 AND name = ?2"));
    find.Bind(1, dir_id).BindBlob(2, name);
    ASSIGN_OR_RETURN(bool found, find.Step());
    if (found) {
      id = find.ColumnInt(0);
      if (find.ColumnInt(1) == static_cast<int64_t>(seen.subvol_id) &&
          find.ColumnInt(2) == static_cast<int64_t>(seen.ino) &&
          find.ColumnInt(3) == static_cast<int64_t>(seen.size) &&
          find.ColumnInt(4) == seen.mtime_ns &&
          (seen.ctime_ns == 0 || find.ColumnIsNull(8) ||
           find.ColumnInt(8) == CtimeDelta(seen.ctime_ns, seen.mtime_ns)) &&
          find.ColumnInt(5) == static_cast<int64_t>(seen.generation)) {
        return id;  // unchanged: no write at all
      }
      level = std::min<int>(static_cast<int>(find.ColumnInt(6)) + 1, kMaxStoredBackoff);
      // A change whose times did not move past the wait recorded last (seen by its
      // generation, size or inode, the times kept or set back): it happened since the
      // last look, so the wait starts now.
      if (absl::ToUnixSeconds(start) <= find.ColumnInt(7)) start = now;
    }
  }
  const int64_t t = absl::ToUnixSeconds(now);
  const int64_t eligible = absl::ToUnixSeconds(start + WaitForLevel(policy, level));
  if (id == 0) {
    ASSIGN_OR_RETURN(
        Statement insert,
        statements_.Get("INSERT INTO files(dir, name, subvol, ino, size, mtime, gen, "
                        "first_seen, next_eligible, ctime_delta) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
    insert.Bind(1, dir_id)
        .BindBlob(2, name)
        .Bind(3, static_cast<int64_t>(seen.subvol_id))
        .Bind(4, static_cast<int64_t>(seen.ino))
        .Bind(5, static_cast<int64_t>(seen.size))
        .Bind(6, seen.mtime_ns)
        .Bind(7, static_cast<int64_t>(seen.generation))
        .Bind(8, t)
        .Bind(9, eligible);
    BindCtimeDelta(insert, 10, seen);
    absl::Status status = insert.Run();
    if (absl::IsFailedPrecondition(status)) {
      return absl::NotFoundError(absl::StrCat("index: ObserveFile(", name,
                                              "): no directory with id ", dir_id));
    }
    RETURN_IF_ERROR(status);
    return sqlite3_last_insert_rowid(db_->get());
  }
  RETURN_IF_ERROR(Atomically([&]() -> absl::Status {
    RETURN_IF_ERROR(MaterializeCopiesOf(id));
    ASSIGN_OR_RETURN(
        Statement update,
        statements_.Get("UPDATE files SET subvol = ?2, ino = ?3, size = ?4, mtime = ?5, "
                        "gen = ?6, last_changed = ?7, next_eligible = ?8, backoff = ?9, ctime_delta = ?10, "
                        "hash_state = 0, hash = NULL, dedupe_state = 0, ref = NULL, "
                        "skip = NULL, skip_kind = NULL, skip_at = NULL, shared_at = NULL "
                        "WHERE id = ?1"));
    update.Bind(1, id)
        .Bind(2, static_cast<int64_t>(seen.subvol_id))
        .Bind(3, static_cast<int64_t>(seen.ino))
        .Bind(4, static_cast<int64_t>(seen.size))
        .Bind(5, seen.mtime_ns)
        .Bind(6, static_cast<int64_t>(seen.generation))
        .Bind(7, absl::ToUnixSeconds(start))
        .Bind(8, eligible)
        .Bind(9, level);
    BindCtimeDelta(update, 10, seen);
    RETURN_IF_ERROR(update.Run());
    return ReleaseDependents(id);
  }));
  return id;
}

absl::Status SqliteVolumeIndex::RemoveFile(int64_t file_id) {
  return Atomically([&]() -> absl::Status {
    RETURN_IF_ERROR(MaterializeCopiesOf(file_id));
    ASSIGN_OR_RETURN(Statement q, statements_.Get("DELETE FROM files WHERE id = ?1"));
    q.Bind(1, file_id);
    RETURN_IF_ERROR(q.Run());
    return ReleaseDependents(file_id);
  });
}

absl::Status SqliteVolumeIndex::ReleaseDependents(int64_t gone_id) {
  // A file btrdupd deduped keeps its dedupe time (RecordSharing); a found one does not.
  ASSIGN_OR_RETURN(Statement q,
                     statements_.Get("UPDATE files SET dedupe_state = 0, ref = NULL, "
                                     "shared_at = CASE WHEN dedupe_state = 2 THEN shared_at END "
                                     "WHERE ref = ?1"));
  q.Bind(1, gone_id);
  return q.Run();
}

absl::Status SqliteVolumeIndex::ReleaseOrphanedDependents() {
  ASSIGN_OR_RETURN(
      Statement q,
      statements_.Get("UPDATE files SET dedupe_state = 0, ref = NULL, "
                      "shared_at = CASE WHEN dedupe_state = 2 THEN shared_at END "
                      "WHERE ref IS NOT NULL AND NOT EXISTS "
                      "(SELECT 1 FROM files r WHERE r.id = files.ref)"));
  return q.Run();
}

absl::StatusOr<std::optional<FileRecord>> SqliteVolumeIndex::FindFile(
    int64_t dir_id, absl::string_view name) {
  ASSIGN_OR_RETURN(Statement q, statements_.Get("SELECT " BTRDUPD_FILE_COLUMNS
                                                  " FROM files WHERE dir = ?1 "
                                                  "AND name = ?2"));
  q.Bind(1, dir_id).BindBlob(2, name);
  ASSIGN_OR_RETURN(std::vector<FileRecord> files, ReadFiles(q));
  if (files.empty()) return std::optional<FileRecord>();
  return std::optional<FileRecord>(std::move(files[0]));
}

absl::StatusOr<std::optional<FileRecord>> SqliteVolumeIndex::GetFile(int64_t file_id) {
  ASSIGN_OR_RETURN(Statement q, statements_.Get("SELECT " BTRDUPD_FILE_COLUMNS
                                                  " FROM files WHERE id = ?1"));
  q.Bind(1, file_id);
  ASSIGN_OR_RETURN(std::vector<FileRecord> files, ReadFiles(q));
  if (files.empty()) return std::optional<FileRecord>();
  return std::optional<FileRecord>(std::move(files[0]));
}

absl::StatusOr<std::vector<FileRecord>> SqliteVolumeIndex::FindFilesByInode(
    uint64_t subvol_id, uint64_t ino) {
  ASSIGN_OR_RETURN(Statement q, statements_.Get("SELECT " BTRDUPD_FILE_COLUMNS
                                                  " FROM files WHERE subvol = ?1 "
                                                  "AND ino = ?2 ORDER BY id"));
  q.Bind(1, static_cast<int64_t>(subvol_id)).Bind(2, static_cast<int64_t>(ino));
  return ReadFiles(q);
}

}  // namespace btrdupd
