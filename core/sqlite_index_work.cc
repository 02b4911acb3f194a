// SqliteVolumeIndex: what the dedupe engine works from - hashes and dedupe states,
// stability waits, the work queues (sizes with work, the files of one size) and the
// statistics.

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/index_schema.h"
#include "core/sqlite_index.h"
#include "core/status_macros.h"

namespace btrdupd {

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
  q.Bind(1, static_cast<int64_t>(min_size)).Bind(2, absl::ToUnixSeconds(now));
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
  q.Bind(1, absl::ToUnixSeconds(now));
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row || q.ColumnIsNull(0)) return std::optional<absl::Time>();
  return std::optional<absl::Time>(absl::FromUnixSeconds(q.ColumnInt(0)));
}

absl::Status SqliteVolumeIndex::EndStabilityWaits(absl::Time now) {
  ASSIGN_OR_RETURN(Statement q,
                     statements_.Get("UPDATE files SET next_eligible = ?1 "
                                     "WHERE dedupe_state = 0 AND next_eligible > ?1"));
  q.Bind(1, absl::ToUnixSeconds(now));
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
  q.Bind(1, absl::ToUnixSeconds(now)).Bind(2, initial).Bind(3, cap).Bind(4, std::min(initial, cap));
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
        .Bind(2, absl::ToUnixSeconds(now))
        .Bind(3, absl::ToUnixSeconds(now + WaitForLevel(policy, level)))
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
      .Bind(4, absl::ToUnixSeconds(when));
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
  // Each counter reads an index, never the table: files_by_size holds the size, hash
  // and both states of every file (see index_schema.cc).
  IndexStats stats;
  auto count = [&](const char* sql, int64_t bind) -> absl::StatusOr<int64_t> {
    ASSIGN_OR_RETURN(Statement q, statements_.Get(sql));
    if (bind != 0) q.Bind(1, bind);
    ASSIGN_OR_RETURN(bool row, q.Step());
    return row ? q.ColumnInt(0) : 0;
  };
  ASSIGN_OR_RETURN(stats.files_tracked, count("SELECT count(*) FROM files", 0));
  ASSIGN_OR_RETURN(stats.files_hashed,
                     count("SELECT count(*) FROM files INDEXED BY files_by_size "
                           "WHERE hash_state = 2",
                           0));
  ASSIGN_OR_RETURN(stats.files_pending,
                     count("SELECT count(*) FROM files INDEXED BY files_pending "
                           "WHERE dedupe_state = 0",
                           0));
  ASSIGN_OR_RETURN(stats.files_waiting,
                     count("SELECT count(*) FROM files INDEXED BY files_pending "
                           "WHERE dedupe_state = 0 AND next_eligible > ?1",
                           absl::ToUnixSeconds(now)));
  {
    ASSIGN_OR_RETURN(Statement q,
                       statements_.Get("SELECT dedupe_state, count(*), total(size) FROM files "
                                       "INDEXED BY files_by_size WHERE dedupe_state != 0 "
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
                        "INDEXED BY files_by_size WHERE hash_state = 2 "
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
