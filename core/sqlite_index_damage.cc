// VolumeIndex::Verify and VolumeIndex::SalvageReadOnlyFlips: looking at a database that
// may be damaged, without changing it (read-only connections only).

#include <sqlite3.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/index.h"
#include "core/sqlite_statement.h"

namespace btrdupd {
namespace {

constexpr int kReadOnly = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW;

// What quick_check reports beyond the first few problems is noise in a log line.
constexpr int kProblemsReported = 3;

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// SQLite's code for a damaged file, whatever status it came back as.
absl::Status AsDataLoss(const absl::Status& status) {
  if (status.ok() || absl::IsDataLoss(status)) return status;
  return absl::DataLossError(status.message());
}

}  // namespace

absl::Status VolumeIndex::Verify(const std::string& db_path) {
  if (!Exists(db_path)) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(db_path, kReadOnly);
  if (!db.ok()) return db.status();
  const std::string sql = absl::StrCat("PRAGMA quick_check(", kProblemsReported, ")");
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2((*db)->get(), sql.c_str(), -1, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status error = SqliteError((*db)->get(), rc, db_path, sql);
    // A file SQLite cannot even read the schema of is damaged.
    return (rc & 0xff) == SQLITE_ERROR ? AsDataLoss(error) : error;
  }
  std::vector<std::string> problems;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    std::string line = text != nullptr ? reinterpret_cast<const char*>(text) : "";
    if (line != "ok") problems.push_back(std::move(line));
  }
  absl::Status status = rc == SQLITE_DONE ? absl::OkStatus()
                                          : SqliteError((*db)->get(), rc, db_path, sql);
  sqlite3_finalize(stmt);
  if (!status.ok()) return status;
  if (!problems.empty()) {
    return absl::DataLossError(absl::StrCat("index database ", ShownDatabasePath(db_path), " is damaged: ",
                                            absl::StrJoin(problems, "; ")));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ReadOnlyFlip>> VolumeIndex::SalvageReadOnlyFlips(
    const std::string& db_path) {
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(db_path, kReadOnly);
  if (!db.ok()) return db.status();
  const char* sql = "SELECT subvol, path, flipped_at FROM ro_flips ORDER BY subvol";
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2((*db)->get(), sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError((*db)->get(), rc, db_path, sql);
  std::vector<ReadOnlyFlip> flips;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    ReadOnlyFlip flip;
    flip.subvol_id = static_cast<uint64_t>(sqlite3_column_int64(stmt, 0));
    const void* path = sqlite3_column_blob(stmt, 1);
    if (path != nullptr) {
      flip.path.assign(static_cast<const char*>(path), sqlite3_column_bytes(stmt, 1));
    }
    flip.flipped_at = absl::FromUnixSeconds(sqlite3_column_int64(stmt, 2));
    flips.push_back(std::move(flip));
  }
  absl::Status status = rc == SQLITE_DONE ? absl::OkStatus()
                                          : SqliteError((*db)->get(), rc, db_path, sql);
  sqlite3_finalize(stmt);
  if (!status.ok()) return status;
  return flips;
}

}  // namespace btrdupd
