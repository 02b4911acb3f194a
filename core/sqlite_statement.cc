#include "core/sqlite_statement.h"

#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace {

constexpr absl::string_view kProcFd = "/proc/self/fd/";
constexpr char kVfsName[] = "btrdupd-as-named";

// An absolute name as it is; a relative one as "unix" makes it absolute.
int FullPathnameAsNamed(sqlite3_vfs* /*vfs*/, const char* name, int out_size, char* out) {
  const size_t length = std::strlen(name);
  if (name[0] != '/') {
    sqlite3_vfs* unix_vfs = sqlite3_vfs_find("unix");
    return unix_vfs->xFullPathname(unix_vfs, name, out_size, out);
  }
  if (length + 1 > static_cast<size_t>(out_size)) return SQLITE_CANTOPEN;
  std::memcpy(out, name, length + 1);
  return SQLITE_OK;
}

// The "unix" VFS with FullPathnameAsNamed, registered once (not as the default).
const char* AsNamedVfs() {
  static const char* const name = [] {
    sqlite3_vfs* unix_vfs = sqlite3_vfs_find("unix");
    if (unix_vfs == nullptr) return static_cast<const char*>(nullptr);
    static sqlite3_vfs vfs = *unix_vfs;
    vfs.pNext = nullptr;
    vfs.zName = kVfsName;
    vfs.xFullPathname = FullPathnameAsNamed;
    if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK) return static_cast<const char*>(nullptr);
    return static_cast<const char*>(kVfsName);
  }();
  return name;
}

}  // namespace

std::string ShownDatabasePath(absl::string_view path) {
  if (!absl::StartsWith(path, kProcFd)) return std::string(path);
  const size_t slash = path.find('/', kProcFd.size());
  if (slash == absl::string_view::npos) return std::string(path);
  const std::string link(path.substr(0, slash));
  char target[PATH_MAX];
  const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
  if (n <= 0) return std::string(path);
  return absl::StrCat(absl::string_view(target, n), path.substr(slash));
}

absl::Status SqliteError(sqlite3* db, int rc, absl::string_view db_path,
                         absl::string_view what) {
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const std::string message =
      absl::StrCat("index database ", ShownDatabasePath(db_path), ": ", what, ": ", detail,
                   " (sqlite code ", rc, ")");
  // A file that cannot be opened says why in its errno (a missing directory is
  // NotFound, not PermissionDenied); a symlink refused by SQLITE_OPEN_NOFOLLOW has none.
  if ((rc & 0xff) == SQLITE_CANTOPEN) {
    const int extended = db != nullptr ? sqlite3_extended_errcode(db) : rc;
    if (extended == SQLITE_CANTOPEN_SYMLINK) {
      return WithErrno(absl::FailedPreconditionError(message), ELOOP);
    }
    const int err = db != nullptr ? sqlite3_system_errno(db) : 0;
    // Names are opened as given (no symlink resolved first), so a symlink in the
    // database's place shows as the O_NOFOLLOW open's ELOOP.
    if (err == ELOOP) return WithErrno(absl::FailedPreconditionError(message), ELOOP);
    if (err != 0) return ErrnoToStatusWithMessage(err, message);
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::ResourceExhaustedError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    case SQLITE_CONSTRAINT:
      return absl::FailedPreconditionError(message);
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path,
                                                         int flags) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, AsNamedVfs());
  if (rc != SQLITE_OK) {
    absl::Status status = SqliteError(db, rc, path, "cannot open");
    sqlite3_close(db);
    return status;
  }
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<SqliteDb>(new SqliteDb(db, path));
}

SqliteDb::~SqliteDb() { sqlite3_close(db_); }

absl::Status SqliteDb::Exec(const char* sql) {
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_, rc, path_, sql);
  return absl::OkStatus();
}

absl::Status SqliteDb::QueryFirstRow(const char* sql,
                                     absl::FunctionRef<void(sqlite3_stmt*)> read_row) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_, rc, path_, sql);
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) read_row(stmt);
  absl::Status status = (rc == SQLITE_ROW || rc == SQLITE_DONE)
                            ? absl::OkStatus()
                            : SqliteError(db_, rc, path_, sql);
  sqlite3_finalize(stmt);
  return status;
}

absl::StatusOr<int64_t> SqliteDb::QueryInt(const char* sql) {
  int64_t value = 0;
  absl::Status status =
      QueryFirstRow(sql, [&](sqlite3_stmt* stmt) { value = sqlite3_column_int64(stmt, 0); });
  if (!status.ok()) return status;
  return value;
}

absl::StatusOr<std::string> SqliteDb::QueryText(const char* sql) {
  std::string value;
  absl::Status status = QueryFirstRow(sql, [&](sqlite3_stmt* stmt) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    if (text != nullptr) value = reinterpret_cast<const char*>(text);
  });
  if (!status.ok()) return status;
  return value;
}

Statement::~Statement() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

Statement& Statement::Bind(int param, int64_t value) {
  sqlite3_bind_int64(stmt_, param, value);
  return *this;
}

Statement& Statement::BindBlob(int param, absl::string_view bytes) {
  // A zero-length blob with a null pointer would bind NULL; use a valid pointer.
  static const char kEmpty = 0;
  sqlite3_bind_blob(stmt_, param, bytes.empty() ? &kEmpty : bytes.data(),
                    static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindText(int param, absl::string_view text) {
  sqlite3_bind_text(stmt_, param, text.data(), static_cast<int>(text.size()),
                    SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindNull(int param) {
  sqlite3_bind_null(stmt_, param);
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(db_->get(), rc, db_->path(), sqlite3_sql(stmt_));
}

absl::Status Statement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

absl::Status Statement::ForEachRow(absl::FunctionRef<absl::Status()> on_row) {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
    absl::Status done = on_row();
    if (!done.ok()) return done;
  }
}

absl::Status Statement::RunOnExistingRow(absl::string_view missing) {
  absl::Status done = Run();
  if (!done.ok()) return done;
  if (sqlite3_changes(db_->get()) == 0) return absl::NotFoundError(missing);
  return absl::OkStatus();
}

int64_t Statement::ColumnInt(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string Statement::ColumnBlob(int col) const {
  const void* data = sqlite3_column_blob(stmt_, col);
  const int size = sqlite3_column_bytes(stmt_, col);
  if (data == nullptr || size <= 0) return std::string();
  return std::string(static_cast<const char*>(data), static_cast<size_t>(size));
}

bool Statement::ColumnIsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

StatementCache::~StatementCache() { Clear(); }

absl::StatusOr<Statement> StatementCache::Get(const char* sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_->get(), sql, -1, SQLITE_PREPARE_PERSISTENT,
                                      &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_->get(), rc, db_->path(), sql);
    it = cache_.emplace(sql, stmt).first;
  }
  return Statement(it->second, db_);
}

void StatementCache::Clear() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  cache_.clear();
}

}  // namespace btrdupd
