// SqliteVolumeIndex: files, their stability schedule, hashes and dedupe states, the
// dedupe engine's work queues and the statistics.

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/index_schema.h"
#include "core/sqlite_index.h"
#include "core/status_macros.h"

namespace btrdupd {
namespace {

constexpr int kMaxStoredBackoff = 64;

absl::Status CheckFileName(absl::string_view name) {
  if (name.empty() || name == "." || name == ".." ||
      name.find('/') != absl::string_view::npos ||
      name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("index: invalid file name \"", name,
                     "\" (must be non-empty, not . or .., without '/' or NUL)"));
  }
  return absl::OkStatus();
}

absl::Status NoSuchFile(int64_t file_id) {
  return absl::NotFoundError(absl::StrCat("index: no file with id ", file_id));
}

int64_t Seconds(absl::Time t) { return absl::ToUnixSeconds(t); }

}  // namespace

absl::StatusOr<FileRecord> SqliteVolumeIndex::ReadFile(
    const Statement& q, absl::flat_hash_map<int64_t, std::string>* memo) {
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
  RETURN_IF_ERROR(CheckFileName(name));
  int64_t id = 0;
  int level = 0;
  // The wait runs from the file's own last change (never from the future), so a file
  // that has not changed for a long time is eligible as soon as it is first seen.
  absl::Time start = now;
  if (seen.last_change.has_value() && *seen.last_change < now) start = *seen.last_change;
  {
    ASSIGN_OR_RETURN(Statement find,
                     statements_.Get("SELECT id, subvol, ino, size, mtime, gen, backoff, "
                                     "coalesce(last_changed, first_seen) "
                                       "FROM files WHERE dir = ?1 AND name = ?2"));
    find.Bind(1, dir_id).BindBlob(2, name);
    ASSIGN_OR_RETURN(bool found, find.Step());
    if (found) {
      id = find.ColumnInt(0);
      if (find.ColumnInt(1) == static_cast<int64_t>(seen.subvol_id) &&
          find.ColumnInt(2) == static_cast<int64_t>(seen.ino) &&
          find.ColumnInt(3) == static_cast<int64_t>(seen.size) &&
          find.ColumnInt(4) == seen.mtime_ns &&
          find.ColumnInt(5) == static_cast<int64_t>(seen.generation)) {
        return id;  // unchanged: no write at all
      }
      level = std::min<int>(static_cast<int>(find.ColumnInt(6)) + 1, kMaxStoredBackoff);
      // A change whose times did not move past the wait recorded last (seen by its
      // generation, size or inode, the times kept or set back): it happened since the
      // last look, so the wait starts now.
      if (Seconds(start) <= find.ColumnInt(7)) start = now;
    }
  }
  const int64_t t = Seconds(now);
  const int64_t eligible = Seconds(start + WaitForLevel(policy, level));
  if (id == 0) {
    ASSIGN_OR_RETURN(
        Statement insert,
        statements_.Get("INSERT INTO files(dir, name, subvol, ino, size, mtime, gen, "
                        "first_seen, next_eligible) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
    insert.Bind(1, dir_id)
        .BindBlob(2, name)
        .Bind(3, static_cast<int64_t>(seen.subvol_id))
        .Bind(4, static_cast<int64_t>(seen.ino))
        .Bind(5, static_cast<int64_t>(seen.size))
        .Bind(6, seen.mtime_ns)
        .Bind(7, static_cast<int64_t>(seen.generation))
        .Bind(8, t)
        .Bind(9, eligible);
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
                        "gen = ?6, last_changed = ?7, next_eligible = ?8, backoff = ?9, "
                        "hash_state = 0, hash = NULL, dedupe_state = 0, ref = NULL, "
                        "skip = NULL, skip_kind = NULL, skip_at = NULL, shared_at = NULL "
                        "WHERE id = ?1"));
    update.Bind(1, id)
        .Bind(2, static_cast<int64_t>(seen.subvol_id))
        .Bind(3, static_cast<int64_t>(seen.ino))
        .Bind(4, static_cast<int64_t>(seen.size))
        .Bind(5, seen.mtime_ns)
        .Bind(6, static_cast<int64_t>(seen.generation))
        .Bind(7, Seconds(start))
        .Bind(8, eligible)
        .Bind(9, level);
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

absl::StatusOr<std::vector<uint64_t>> SqliteVolumeIndex::SizesWithWork(uint64_t min_size,
                                                                       absl::Time now) {
  // The distinct sizes of eligible pending files come from files_pending alone
  // (covering); then one probe of files_by_size per distinct size (LIMIT 2).
  ASSIGN_OR_RETURN(
      Statement q,
      statements_.Get("SELECT s.size FROM (SELECT DISTINCT size FROM files "
                      "INDEXED BY files_pending WHERE dedupe_state = 0 "
                      "AND next_eligible <= ?2 AND size >= ?1) s "
                      "WHERE (SELECT count(*) FROM (SELECT 1 FROM files o "
                      "INDEXED BY files_by_size WHERE o.size = s.size LIMIT 2)) >= 2 "
                      "ORDER BY s.size"));
  q.Bind(1, static_cast<int64_t>(min_size)).Bind(2, Seconds(now));
  std::vector<uint64_t> out;
  RETURN_IF_ERROR(q.ForEachRow([&]() -> absl::Status {
    out.push_back(static_cast<uint64_t>(q.ColumnInt(0)));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<FileRecord>> SqliteVolumeIndex::FilesOfSize(uint64_t size) {
  ASSIGN_OR_RETURN(Statement q, statements_.Get("SELECT " BTRDUPD_FILE_COLUMNS
                                                  " FROM files WHERE size = ?1 "
                                                  "ORDER BY id"));
  q.Bind(1, static_cast<int64_t>(size));
  return ReadFiles(q);
}

absl::StatusOr<std::optional<absl::Time>> SqliteVolumeIndex::NextEligibleAfter(
    absl::Time now) {
  ASSIGN_OR_RETURN(Statement q,
                     statements_.Get("SELECT min(next_eligible) FROM files "
                                     "WHERE dedupe_state = 0 AND next_eligible > ?1"));
  q.Bind(1, Seconds(now));
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row || q.ColumnIsNull(0)) return std::optional<absl::Time>();
  return std::optional<absl::Time>(absl::FromUnixSeconds(q.ColumnInt(0)));
}

absl::Status SqliteVolumeIndex::EndStabilityWaits(absl::Time now) {
  ASSIGN_OR_RETURN(Statement q,
                     statements_.Get("UPDATE files SET next_eligible = ?1 "
                                     "WHERE dedupe_state = 0 AND next_eligible > ?1"));
  q.Bind(1, Seconds(now));
  RETURN_IF_ERROR(q.Run());
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SqliteVolumeIndex::ClampStabilityWaits(
    absl::Time now, const StabilityPolicy& policy) {
  // WaitForLevel in SQL: min(initial << level, max_backoff) in seconds. The shift stops
  // at 30: .btrdupd.conf bounds initial_wait below 2^25 s and max_backoff below 2^25 s,
  // so initial << 30 never overflows and is past any cap once initial >= 1 s.
  const int64_t initial = absl::ToInt64Seconds(policy.initial_wait);
  const int64_t cap = absl::ToInt64Seconds(policy.max_backoff);
  ASSIGN_OR_RETURN(
      Statement q,
      statements_.Get("UPDATE files INDEXED BY files_pending "
                      "SET next_eligible = ?1 + min(?2 << min(backoff, 30), ?3) "
                      "WHERE dedupe_state = 0 AND next_eligible > ?1 + ?4 "
                      "AND next_eligible > ?1 + min(?2 << min(backoff, 30), ?3)"));
  q.Bind(1, Seconds(now)).Bind(2, initial).Bind(3, cap).Bind(4, std::min(initial, cap));
  RETURN_IF_ERROR(q.Run());
  return static_cast<int64_t>(sqlite3_changes(db_->get()));
}

absl::Status SqliteVolumeIndex::SetHash(int64_t file_id, HashState state,
                                        absl::string_view hash) {
  if ((state == HashState::kNone) != hash.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("index: SetHash(", file_id, "): a hash is required for a hashed "
                     "state and forbidden for kNone"));
  }
  ASSIGN_OR_RETURN(
      Statement q,
      statements_.Get("UPDATE files SET hash_state = ?2, hash = ?3, "
                      "backoff = CASE WHEN ?2 = 2 THEN 0 ELSE backoff END WHERE id = ?1"));
  q.Bind(1, file_id).Bind(2, static_cast<int64_t>(state));
  if (hash.empty()) {
    q.BindNull(3);
  } else {
    q.BindBlob(3, hash);
  }
  return q.RunOnExistingRow(NoSuchFile(file_id).message());
}

absl::Status SqliteVolumeIndex::InvalidateFile(int64_t file_id, absl::Time now,
                                               const StabilityPolicy& policy) {
  return Atomically([&]() -> absl::Status {
    RETURN_IF_ERROR(MaterializeCopiesOf(file_id));
    int level = 0;
    {
      ASSIGN_OR_RETURN(Statement find,
                         statements_.Get("SELECT backoff FROM files WHERE id = ?1"));
      find.Bind(1, file_id);
      ASSIGN_OR_RETURN(bool found, find.Step());
      if (!found) return NoSuchFile(file_id);
      level = std::min<int>(static_cast<int>(find.ColumnInt(0)) + 1, kMaxStoredBackoff);
    }
    ASSIGN_OR_RETURN(
        Statement update,
        statements_.Get("UPDATE files SET last_changed = ?2, next_eligible = ?3, "
                        "backoff = ?4, hash_state = 0, hash = NULL, dedupe_state = 0, "
                        "ref = NULL, skip = NULL, skip_kind = NULL, skip_at = NULL, "
                        "shared_at = NULL WHERE id = ?1"));
    update.Bind(1, file_id)
        .Bind(2, Seconds(now))
        .Bind(3, Seconds(now + WaitForLevel(policy, level)))
        .Bind(4, level);
    RETURN_IF_ERROR(update.Run());
    return ReleaseDependents(file_id);
  });
}

absl::Status SqliteVolumeIndex::SetDedupeState(int64_t file_id, DedupeState state,
                                               int64_t reference_id) {
  ASSIGN_OR_RETURN(
      Statement q,
      statements_.Get("UPDATE files SET dedupe_state = ?2, ref = ?3, skip = NULL, "
                      "skip_kind = NULL, skip_at = NULL, shared_at = NULL, "
                      "backoff = CASE WHEN ?2 != 0 THEN 0 ELSE backoff END WHERE id = ?1"));
  q.Bind(1, file_id).Bind(2, static_cast<int64_t>(state));
  if (reference_id == 0) {
    q.BindNull(3);
  } else {
    q.Bind(3, reference_id);
  }
  return q.RunOnExistingRow(NoSuchFile(file_id).message());
}

absl::Status SqliteVolumeIndex::RecordSharing(int64_t file_id, DedupeState state,
                                              int64_t reference_id, absl::Time when) {
  if (!SharesWithReference(state) || reference_id == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "index: RecordSharing(", file_id, "): the state must be kDeduped or kAlreadyShared, "
        "with a reference"));
  }
  static_assert(static_cast<int>(DedupeState::kDeduped) == 2 &&
                    static_cast<int>(DedupeState::kAlreadyShared) == 5,
                "literals below");
  // Found sharing (?2 = 5) by a row whose shared_at is btrdupd's own dedupe (kDeduped,
  // or kPending keeping the time of a dedupe: ReleaseDependents, ResetDedupeStates):
  // stays kDeduped with that time.
  ASSIGN_OR_RETURN(
      Statement q,
      statements_.Get("UPDATE files SET "
                      "dedupe_state = CASE WHEN ?2 = 5 AND shared_at IS NOT NULL AND "
                      "dedupe_state IN (0, 2) THEN 2 ELSE ?2 END, "
                      "shared_at = CASE WHEN ?2 = 5 AND shared_at IS NOT NULL AND "
                      "dedupe_state IN (0, 2) THEN shared_at ELSE ?4 END, "
                      "ref = ?3, skip = NULL, skip_kind = NULL, skip_at = NULL, backoff = 0 "
                      "WHERE id = ?1"));
  q.Bind(1, file_id)
      .Bind(2, static_cast<int64_t>(state))
      .Bind(3, reference_id)
      .Bind(4, Seconds(when));
  return q.RunOnExistingRow(NoSuchFile(file_id).message());
}

absl::Status SqliteVolumeIndex::ResetDedupeStates() {
  ASSIGN_OR_RETURN(Statement q,
                     statements_.Get("UPDATE files SET dedupe_state = 0, ref = NULL, "
                                     "skip = NULL, skip_kind = NULL, skip_at = NULL, "
                                     "shared_at = CASE WHEN dedupe_state = 2 THEN shared_at END "
                                     "WHERE dedupe_state != 0 OR "
                                     "ref IS NOT NULL OR skip IS NOT NULL"));
  return q.Run();
}

absl::StatusOr<IndexStats> SqliteVolumeIndex::Stats(absl::Time now) {
  // Each counter reads the smallest index that answers it (see index_schema.cc), so a
  // status request on a volume of mostly untouched files stays cheap.
  IndexStats stats;
  auto count = [&](const char* sql, int64_t bind) -> absl::StatusOr<int64_t> {
    ASSIGN_OR_RETURN(Statement q, statements_.Get(sql));
    if (bind != 0) q.Bind(1, bind);
    ASSIGN_OR_RETURN(bool row, q.Step());
    return row ? q.ColumnInt(0) : 0;
  };
  ASSIGN_OR_RETURN(stats.files_tracked, count("SELECT count(*) FROM files", 0));
  ASSIGN_OR_RETURN(stats.files_hashed,
                     count("SELECT count(*) FROM files INDEXED BY files_hashed "
                           "WHERE hash_state = 2",
                           0));
  ASSIGN_OR_RETURN(stats.files_pending,
                     count("SELECT count(*) FROM files INDEXED BY files_pending "
                           "WHERE dedupe_state = 0",
                           0));
  ASSIGN_OR_RETURN(stats.files_waiting,
                     count("SELECT count(*) FROM files INDEXED BY files_pending "
                           "WHERE dedupe_state = 0 AND next_eligible > ?1",
                           Seconds(now)));
  {
    ASSIGN_OR_RETURN(Statement q,
                       statements_.Get("SELECT dedupe_state, count(*), total(size) FROM files "
                                       "INDEXED BY files_done WHERE dedupe_state != 0 "
                                       "GROUP BY dedupe_state"));
    RETURN_IF_ERROR(q.ForEachRow([&]() -> absl::Status {
      const auto state = static_cast<DedupeState>(q.ColumnInt(0));
      if (state == DedupeState::kDeduped) {
        stats.files_deduped = q.ColumnInt(1);
        stats.bytes_deduped = static_cast<uint64_t>(q.ColumnInt(2));
      } else if (state == DedupeState::kAlreadyShared) {
        stats.files_already_shared = q.ColumnInt(1);
      } else if (state == DedupeState::kSkipped) {
        stats.files_skipped = q.ColumnInt(1);
      }
      return absl::OkStatus();
    }));
  }
  {
    // Per (size, full hash) group of n files of which d share their reference's extents
    // (deduped or found sharing): one copy is kept, so n - 1 - d more could be shared.
    ASSIGN_OR_RETURN(
        Statement q,
        statements_.Get("SELECT size, count(*), total(dedupe_state IN (2, 5)) FROM files "
                        "INDEXED BY files_hashed WHERE hash_state = 2 "
                        "GROUP BY size, hash HAVING count(*) >= 2"));
    RETURN_IF_ERROR(q.ForEachRow([&]() -> absl::Status {
      ++stats.duplicate_groups;
      const int64_t left = q.ColumnInt(1) - 1 - q.ColumnInt(2);
      if (left > 0) stats.bytes_saveable += static_cast<uint64_t>(left) * q.ColumnInt(0);
      return absl::OkStatus();
    }));
  }
  {
    ASSIGN_OR_RETURN(std::optional<std::string> freed, GetMeta(kBytesFreedMetaKey));
    if (freed.has_value() && !absl::SimpleAtoi(*freed, &stats.bytes_freed)) {
      stats.bytes_freed = 0;
    }
  }
  ASSIGN_OR_RETURN(int64_t pages, db_->QueryInt("PRAGMA page_count"));
  ASSIGN_OR_RETURN(int64_t page_size, db_->QueryInt("PRAGMA page_size"));
  stats.database_bytes = pages * page_size;
  return stats;
}

}  // namespace btrdupd
