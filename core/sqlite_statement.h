// Thin RAII helpers over the SQLite C API, used only by the volume index
// (core/sqlite_index*.cc): an owned connection, a cache of prepared statements, and a
// scoped handle that resets its statement when it goes out of scope so no read
// transaction is left open by a half-stepped query.
//
// Contract: every value reaches SQL through sqlite3_bind_* (names are bound as BLOBs,
// never pasted into SQL text). Errors come back as absl::Status with the database path,
// the SQL and SQLite's message. Not thread-safe (one connection, one thread).

#ifndef BTRDUPD_CORE_SQLITE_STATEMENT_H_
#define BTRDUPD_CORE_SQLITE_STATEMENT_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/index.h"

namespace btrdupd {

// Maps an SQLite result code to an absl::Status code with a message that names `what`.
absl::Status SqliteError(sqlite3* db, int rc, absl::string_view db_path,
                         absl::string_view what);

// Database paths: SqliteDb opens a path exactly as given. SQLite's own "unix" VFS turns
// a name into a full path by following every symlink in it, which would undo a caller
// that names the file through a checked directory descriptor
// (`/proc/self/fd/N/btrdupd.db`: the directory it checked, not whatever is at its path
// now) and would make a long path too long for SQLite (512 bytes). So connections use a
// VFS that is "unix" in all but that: an absolute name is kept as it is (its journal is
// `<name>-journal` in the same directory); the last component is still never followed
// (SQLite opens with O_NOFOLLOW).
// ShownDatabasePath (core/index.h) names such a path in messages.

// An open connection; closes itself.
class SqliteDb {
 public:
  // `flags` as for sqlite3_open_v2.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path, int flags);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }

  // Runs SQL text with no parameters and no wanted rows (DDL, PRAGMA, BEGIN, ...).
  absl::Status Exec(const char* sql);
  // Runs a query returning one integer (e.g. "PRAGMA user_version").
  absl::StatusOr<int64_t> QueryInt(const char* sql);
  // Runs a query returning one text value ("" when no row).
  absl::StatusOr<std::string> QueryText(const char* sql);

 private:
  SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  // Runs `sql` and hands its first row, if any, to `read_row`.
  absl::Status QueryFirstRow(const char* sql, absl::FunctionRef<void(sqlite3_stmt*)> read_row);
  sqlite3* db_;
  std::string path_;
};

// A prepared statement borrowed from a StatementCache. Bind, Step, read columns; the
// statement is reset and its bindings cleared when this handle is destroyed.
// Parameter and column indexes: parameters from 1 (as in SQL "?1"), columns from 0.
class Statement {
 public:
  Statement(sqlite3_stmt* stmt, const SqliteDb* db) : stmt_(stmt), db_(db) {}
  ~Statement();
  Statement(Statement&& other) noexcept : stmt_(other.stmt_), db_(other.db_) {
    other.stmt_ = nullptr;
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Bind(int param, int64_t value);
  Statement& BindBlob(int param, absl::string_view bytes);  // never NULL ("" = x'')
  Statement& BindText(int param, absl::string_view text);
  Statement& BindNull(int param);

  // Advances: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion, ignoring rows (for INSERT/UPDATE/DELETE).
  absl::Status Run();
  // Steps through every row, calling `on_row` at each (it reads the columns); stops at
  // the first error, of the step or of `on_row`.
  absl::Status ForEachRow(absl::FunctionRef<absl::Status()> on_row);
  // Run() for an UPDATE/DELETE of one known row: NotFound with `missing` as the message
  // when it changed no row.
  absl::Status RunOnExistingRow(absl::string_view missing);

  int64_t ColumnInt(int col) const;
  std::string ColumnBlob(int col) const;  // "" for NULL
  bool ColumnIsNull(int col) const;

 private:
  sqlite3_stmt* stmt_;
  const SqliteDb* db_;
};

// Prepares each distinct SQL text once and keeps it for the connection's lifetime.
class StatementCache {
 public:
  explicit StatementCache(SqliteDb* db) : db_(db) {}
  ~StatementCache();
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  // REQUIRES: no other live Statement for the same `sql` (statements are not nested
  // with themselves).
  absl::StatusOr<Statement> Get(const char* sql);
  // Finalizes every cached statement (before VACUUM or close).
  void Clear();

 private:
  SqliteDb* db_;
  absl::flat_hash_map<std::string, sqlite3_stmt*> cache_;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_SQLITE_STATEMENT_H_
