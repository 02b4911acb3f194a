// SqliteVolumeIndex: skipped files, by kind (core/skip_kind.h).

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/sqlite_index.h"
#include "core/status_macros.h"

namespace btrdupd {

absl::Status SqliteVolumeIndex::RecordSkip(int64_t file_id, SkipKind kind, absl::string_view detail,
                                           absl::Time now) {
  ASSIGN_OR_RETURN(Statement q,
                   statements_.Get("UPDATE files SET dedupe_state = ?2, ref = NULL, skip = ?3, "
                                   "skip_kind = ?4, skip_at = ?5, shared_at = NULL, backoff = 0 "
                                   "WHERE id = ?1"));
  q.Bind(1, file_id)
      .Bind(2, static_cast<int64_t>(DedupeState::kSkipped))
      .BindText(3, detail)
      .Bind(4, static_cast<int64_t>(kind))
      .Bind(5, absl::ToUnixSeconds(now));
  return q.RunOnExistingRow(absl::StrCat("index: no file with id ", file_id));
}

absl::StatusOr<std::vector<SkipKindSummary>> SqliteVolumeIndex::SkippedByKind(int recent_per_kind) {
  // files_skipped holds the skipped rows only, so this reads no others. SQLite uses a
  // partial index only when the WHERE clause holds the index's own term, hence the
  // literal, not a parameter.
  static_assert(static_cast<int>(DedupeState::kSkipped) == 3, "literal below");
  std::vector<SkipKindSummary> out;
  {
    ASSIGN_OR_RETURN(Statement q,
                     statements_.Get("SELECT coalesce(skip_kind, 0), count(*) FROM files "
                                     "INDEXED BY files_skipped WHERE dedupe_state = 3 "
                                     "GROUP BY 1 ORDER BY 1"));
    RETURN_IF_ERROR(q.ForEachRow([&]() -> absl::Status {
      SkipKindSummary summary;
      // A number this version does not know counts as unknown.
      summary.kind = SkipKindFromNumber(q.ColumnInt(0)).value_or(SkipKind::kUnknown);
      summary.files = q.ColumnInt(1);
      if (!out.empty() && out.back().kind == summary.kind) {
        out.back().files += summary.files;
      } else {
        out.push_back(std::move(summary));
      }
      return absl::OkStatus();
    }));
  }
  if (recent_per_kind <= 0) return out;
  absl::flat_hash_map<int64_t, std::string> memo;
  for (SkipKindSummary &summary : out) {
    ASSIGN_OR_RETURN(
        Statement q,
        statements_.Get("SELECT dir, name, skip, skip_at FROM files INDEXED BY files_skipped "
                        "WHERE dedupe_state = 3 AND "
                        "coalesce(skip_kind, 0) = ?1 "
                        "ORDER BY skip_at DESC, id DESC LIMIT ?2"));
    q.Bind(1, static_cast<int64_t>(summary.kind)).Bind(2, static_cast<int64_t>(recent_per_kind));
    RETURN_IF_ERROR(q.ForEachRow([&]() -> absl::Status {
      SkippedFile file;
      ASSIGN_OR_RETURN(std::string dir, DirPathMemo(q.ColumnInt(0), &memo));
      const std::string name = q.ColumnBlob(1);
      file.path = dir.empty() ? name : absl::StrCat(dir, "/", name);
      file.detail = q.ColumnBlob(2);
      if (!q.ColumnIsNull(3)) file.skipped_at = absl::FromUnixSeconds(q.ColumnInt(3));
      summary.recent.push_back(std::move(file));
      return absl::OkStatus();
    }));
  }
  return out;
}

}  // namespace btrdupd
