#include "core/index_schema.h"

#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/index.h"
#include "core/status_macros.h"

namespace btrdupd {
namespace {

// "btrd" in ASCII: marks a file as a btrdupd index.
constexpr int32_t kIndexApplicationId = 0x62747264;

// Schema version 1. Size matters (millions of rows): integers are varints, NULL and the
// constants 0/1 take no payload bytes, so new unhashed files carry almost nothing beyond
// their name, inode, size, mtime, generation and two times (last_changed is NULL while
// it equals first_seen). Measured by bench/index_size_bench: ~140 bytes per file for
// 300 000 unhashed files in 1 000-file directories (~134 after VACUUM). Indexes, each
// for a query (as of version 5, below):
//   files_by_name  (dir, name) unique: ObserveFile's lookup, ListDir, RemoveDir
//   files_by_inode (subvol, ino): incremental change tracking, RemoveSubvolume
//   files_by_size  (size, hash, hash_state, dedupe_state): FilesOfSize, "does this
//                  size have a partner", and Stats (one pass over this index, which
//                  holds everything its counters and the (size, hash) groups need)
//   files_pending  (next_eligible, size) over kPending files only: NextEligibleAfter
//                  is one seek; SizesWithWork reads the eligible pending sizes from it
//                  without touching the table
//   files_by_ref   (ref) over the few files with a reference: release dependents when a
//                  reference goes away
//   files_skipped  (skip_kind) over skipped files only: SkippedByKind
// The partial indexes hold nothing for a new, unhashed file, so they cost it nothing.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE meta(
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE subvols(
  id INTEGER PRIMARY KEY,
  path BLOB NOT NULL,
  uuid TEXT NOT NULL,
  parent_uuid TEXT NOT NULL,
  received_uuid TEXT NOT NULL,
  read_only INTEGER NOT NULL,
  last_generation INTEGER NOT NULL DEFAULT 0,
  last_scan INTEGER
);

CREATE TABLE dirs(
  id INTEGER PRIMARY KEY,
  parent INTEGER REFERENCES dirs(id),
  name BLOB NOT NULL,
  subvol INTEGER NOT NULL,
  ino INTEGER
);
CREATE UNIQUE INDEX dirs_by_name ON dirs(parent, name);
CREATE INDEX dirs_by_inode ON dirs(subvol, ino);
INSERT INTO dirs(id, parent, name, subvol, ino) VALUES (1, NULL, x'', 5, 256);

CREATE TABLE files(
  id INTEGER PRIMARY KEY,
  dir INTEGER NOT NULL REFERENCES dirs(id),
  name BLOB NOT NULL,
  subvol INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  gen INTEGER NOT NULL,
  first_seen INTEGER NOT NULL,
  last_changed INTEGER,
  next_eligible INTEGER NOT NULL,
  backoff INTEGER NOT NULL DEFAULT 0,
  hash_state INTEGER NOT NULL DEFAULT 0,
  hash BLOB,
  dedupe_state INTEGER NOT NULL DEFAULT 0,
  ref INTEGER,
  skip TEXT
);
CREATE UNIQUE INDEX files_by_name ON files(dir, name);
CREATE INDEX files_by_inode ON files(subvol, ino);
CREATE INDEX files_by_size ON files(size);
CREATE INDEX files_pending ON files(next_eligible, size) WHERE dedupe_state = 0;
CREATE INDEX files_by_ref ON files(ref) WHERE ref IS NOT NULL;
CREATE INDEX files_hashed ON files(size, hash, dedupe_state) WHERE hash_state = 2;
CREATE INDEX files_done ON files(dedupe_state, size) WHERE dedupe_state != 0;

CREATE TABLE ro_flips(
  subvol INTEGER PRIMARY KEY,
  path BLOB NOT NULL,
  flipped_at INTEGER NOT NULL
);
)sql";

// Version 2: skip reasons as a kind (core/skip_kind.h) plus the detail (`skip`) and the
// time of the skip. Files an older version skipped (free text only) go back to pending:
// the next pass finds their kind again (their hashes are kept, so it costs no read).
constexpr char kSchemaV2[] = R"sql(
ALTER TABLE files ADD COLUMN skip_kind INTEGER;
ALTER TABLE files ADD COLUMN skip_at INTEGER;
UPDATE files SET dedupe_state = 0, skip = NULL WHERE dedupe_state = 3;
)sql";

// Schema version 3: snapshots that share their source's rows (core/index.h,
// "Snapshots"). subvols.source is the subvolume whose rows stand for the snapshot's
// unchanged files (NULL: the subvolume has rows of its own for every file), and
// source_gen the source's generation the snapshot was compared at: a source row whose
// gen is above it was written after the comparison, and the snapshot does not hold it.
// snap_diff lists the inodes where a snapshot differs from its source (its own row, or
// none when the snapshot lacks the file): a few bytes per differing file, nothing per
// unchanged one.
constexpr char kSchemaV3[] = R"sql(
ALTER TABLE subvols ADD COLUMN source INTEGER;
ALTER TABLE subvols ADD COLUMN source_gen INTEGER;
CREATE INDEX subvols_by_source ON subvols(source) WHERE source IS NOT NULL;
CREATE TABLE snap_diff(
  subvol INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  PRIMARY KEY(subvol, ino)
) WITHOUT ROWID;
)sql";

// Version 4: when a file came to share its reference's extents (`shared_at`, seconds;
// core/index.h RecordSharing), and the state kAlreadyShared (5) for a file found
// sharing that btrdupd did not dedupe. Rows of older versions keep their state with an
// unknown time (NULL): an older btrdupd recorded found-sharing files as deduped too, and
// which they were is not known.
constexpr char kSchemaV4[] = R"sql(
ALTER TABLE files ADD COLUMN shared_at INTEGER;
)sql";

// Version 5: smaller rows and fewer indexes (bench/many_files_bench.sh prints the bytes
// per table and index). A file digest is 16 bytes, the first half of its SHA-256
// (core/hash_stream.h, kFileDigestBytes): a 32-byte digest written by an older version
// is cut to the 16 bytes this version computes for the same file, so no file is read
// again. One index by size that holds the hash and both states answers FilesOfSize,
// the partner probe of SizesWithWork and every counter of Stats, in place of
// files_by_size (size), files_hashed and files_done; files_skipped holds only the
// skipped files, for SkippedByKind. IF EXISTS: a database a test set back to an older
// version number has the new indexes already.
constexpr char kSchemaV5[] = R"sql(
UPDATE files SET hash = substr(hash, 1, 16) WHERE length(hash) > 16;
DROP INDEX IF EXISTS files_hashed;
DROP INDEX IF EXISTS files_done;
DROP INDEX IF EXISTS files_by_size;
DROP INDEX IF EXISTS files_skipped;
CREATE INDEX files_by_size ON files(size, hash, hash_state, dedupe_state);
CREATE INDEX files_skipped ON files(skip_kind) WHERE dedupe_state = 3;
)sql";

// Version 6: the file's ctime when it was seen (`ctime_delta`: ctime - mtime in ns, so
// the usual file, whose ctime equals its mtime, stores 0, which takes no payload byte;
// NULL when unknown, as in every row of an older version until the file changes). The
// scanner compares it with size and mtime: a file rewritten in place with its size and
// mtime kept (set back with utimensat) still moves its ctime.
constexpr char kSchemaV6[] = R"sql(
ALTER TABLE files ADD COLUMN ctime_delta INTEGER;
)sql";

// kMigrations[v] turns a version-v database into version v+1. Version 0 is "nothing
// there yet" (an empty file, or one whose tables were never created).
const std::vector<const char*>& Migrations() {
  static const auto* const steps = new std::vector<const char*>{kSchemaV1, kSchemaV2, kSchemaV3,
                                                                kSchemaV4, kSchemaV5, kSchemaV6};
  return *steps;
}

absl::Status Refuse(const std::string& path, absl::string_view why) {
  return absl::FailedPreconditionError(absl::StrCat(
      "index database ", ShownDatabasePath(path), ": ", why, "; refusing to use it (the file was not changed)"));
}

// Checks the stamp of the database open on `db`: the version to open it at (0 for a
// file with nothing in it yet), or why it is refused (see core/index_schema.h).
absl::StatusOr<int64_t> CheckStamp(SqliteDb& db, const std::string& path) {
  absl::StatusOr<int64_t> app_id = db.QueryInt("PRAGMA application_id");
  if (!app_id.ok()) {
    if (absl::IsDataLoss(app_id.status())) {
      // Damaged (garbage, or shorter than its header says: truncated). DataLoss, not
      // FailedPrecondition: the caller may set the file aside and rebuild the index.
      return absl::DataLossError(absl::StrCat(
          "index database ", ShownDatabasePath(path), ": damaged or not an SQLite database (",
          app_id.status().message(), "); the file was not changed"));
    }
    return app_id.status();
  }
  absl::StatusOr<int64_t> version = db.QueryInt("PRAGMA user_version");
  if (!version.ok()) return version.status();
  if (*app_id != 0 && *app_id != kIndexApplicationId) {
    return Refuse(path, absl::StrFormat("an SQLite database of another application "
                                        "(application_id 0x%08x), not a btrdupd index",
                                        static_cast<uint32_t>(*app_id)));
  }
  if (*version > kIndexSchemaVersion) {
    return Refuse(path, absl::StrCat("schema version ", *version,
                                     " is newer than this btrdupd understands (",
                                     kIndexSchemaVersion,
                                     "); run a newer btrdupd or point --db-dir elsewhere"));
  }
  if (*version < 0) {
    return Refuse(path, absl::StrCat("unknown schema version ", *version));
  }
  if (*app_id == 0) {
    // Not stamped by btrdupd: acceptable only when there is nothing in it yet.
    sqlite3_stmt* stmt = nullptr;
    const char* sql =
        "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name";
    int rc = sqlite3_prepare_v2(db.get(), sql, -1, &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db.get(), rc, path, sql);
    std::vector<std::string> names;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      names.push_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) return SqliteError(db.get(), rc, path, sql);
    if (!names.empty() || *version != 0) {
      return Refuse(path, absl::StrCat("an SQLite database that is not a btrdupd index "
                                       "(no btrdupd stamp; it holds ",
                                       absl::StrJoin(names, ", "), ")"));
    }
    return 0;
  }
  return *version;
}

// The read fails because a killed writer left a hot rollback journal, which only a
// read-write connection may roll back.
bool NeedsRollback(const absl::StatusOr<int64_t>& read, SqliteDb& db) {
  return !read.ok() && sqlite3_extended_errcode(db.get()) == SQLITE_READONLY_ROLLBACK;
}

// Reads the stamp and the list of objects with a read-only connection, and decides
// whether the file may be opened for writing. A database left with a hot rollback
// journal (a run killed in the middle of a transaction) cannot be read read-only:
// then it is inspected through a read-write connection, whose first read rolls the
// interrupted transaction back, as SQLite requires.
absl::Status InspectExisting(const std::string& path, bool read_write = false) {
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(
      path, (read_write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) | SQLITE_OPEN_NOFOLLOW);
  // Cannot open read-only: most likely there is no file yet. Anything else (a symlink,
  // permissions) is reported by the read-write open that follows.
  if (!db.ok()) return absl::OkStatus();
  absl::StatusOr<int64_t> version = CheckStamp(**db, path);
  if (!read_write && NeedsRollback(version, **db)) {
    db->reset();
    return InspectExisting(path, /*read_write=*/true);
  }
  return version.status();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteDb>> OpenIndexDatabase(const std::string& path) {
  if (absl::Status s = InspectExisting(path); !s.ok()) return s;
  // NOFOLLOW: the database lives inside a volume users may write to; never follow a
  // symlink planted in its place.
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(
      path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW);
  if (!db.ok()) return db.status();
  SqliteDb& conn = **db;
  sqlite3_busy_timeout(conn.get(), 10000);
  // A rollback journal, not WAL: WAL keeps its index in a memory-mapped "-shm" file next
  // to the database, and a page fault on it that the filesystem cannot back (a full
  // volume: btrfs must allocate to write even a NOCOW page it has not written yet) kills
  // the process with SIGBUS. SQLite's exclusive locking mode would keep the WAL index in
  // heap memory instead, but it also keeps every other reader out (`--status`, which
  // reads the database while the daemon runs) for as long as the daemon lives. With a
  // journal and no mmap, a full volume is an SQLITE_FULL error like any other: the
  // transaction rolls back and the database stays as it was. TRUNCATE rather than
  // DELETE: the journal file stays, so a commit does not create and delete a directory
  // entry each time. A database left in WAL mode by an older btrdupd is converted here
  // (that needs no other connection open; the busy timeout waits for one).
  absl::StatusOr<std::string> mode = conn.QueryText("PRAGMA journal_mode=TRUNCATE");
  if (!mode.ok()) return mode.status();
  if (*mode != "truncate") {
    return absl::FailedPreconditionError(absl::StrCat(
        "index database ", ShownDatabasePath(path), ": cannot switch to a rollback journal (journal mode \"",
        *mode, "\"); is another process holding it open?"));
  }
  // mmap_size=0: no page of the database is ever read through a memory map (the same
  // SIGBUS on a full or failing volume); this is SQLite's default, made explicit.
  // cache_size: kIndexCacheKiB (6 MiB) of page cache (SQLite's default is 2 MiB) holds
  // the whole database of about 40 000 files (schema 5: ~145 bytes per file); beyond
  // that the random-order pages come from the kernel's page cache at the cost of a
  // pread. It is the largest part of btrdupd's memory (8 MiB before: a one-shot pass
  // over 300 000 files peaked at 30-31 MiB RSS, bench/many_files_bench.sh).
  // synchronous=OFF: a commit hands its pages to the kernel and does not wait for them
  // to reach the disk. A killed btrdupd loses nothing (the kernel still writes them);
  // only a power loss or kernel crash can leave the file damaged, and a damaged index is
  // moved aside and rebuilt by a full scan (the index is a cache of the filesystem).
  // With a rollback journal, NORMAL would fsync the journal and the database at every
  // commit: measured, that made one-shot runs 6-10x slower on btrfs. The one record
  // that must survive a power loss, a cleared read-only flag, is written with FULL
  // (RecordReadOnlyFlip).
  const std::string cache_size = absl::StrCat("PRAGMA cache_size=-", kIndexCacheKiB);
  for (const char* pragma : {"PRAGMA synchronous=OFF", "PRAGMA foreign_keys=ON",
                             cache_size.c_str(), "PRAGMA mmap_size=0"}) {
    if (absl::Status s = conn.Exec(pragma); !s.ok()) return s;
  }
  // Up to date: done without taking the write lock, so opening the index (e.g. for
  // --status) never waits for another process's open batch.
  absl::StatusOr<int64_t> current = conn.QueryInt("PRAGMA user_version");
  if (!current.ok()) return current.status();
  if (*current == kIndexSchemaVersion) return db;
  // Migrate under the write lock, re-reading the version (another process may have
  // created the schema meanwhile).
  if (absl::Status s = conn.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  absl::StatusOr<int64_t> version = conn.QueryInt("PRAGMA user_version");
  absl::Status status = version.status();
  if (status.ok() && *version > kIndexSchemaVersion) {
    status = Refuse(path, absl::StrCat("schema version ", *version, " appeared meanwhile"));
  }
  bool migrated = false;
  for (int64_t v = status.ok() ? *version : kIndexSchemaVersion;
       status.ok() && v < kIndexSchemaVersion; ++v) {
    migrated = true;
    status = conn.Exec(Migrations()[v]);
    if (status.ok()) {
      status = conn.Exec(absl::StrCat("PRAGMA user_version=", v + 1).c_str());
    }
  }
  if (status.ok() && migrated) {
    status =
        conn.Exec(absl::StrCat("PRAGMA application_id=", kIndexApplicationId).c_str());
  }
  if (!status.ok()) {
    conn.Exec("ROLLBACK").IgnoreError();
    return status;
  }
  if (absl::Status s = conn.Exec("COMMIT"); !s.ok()) return s;
  return db;
}

absl::StatusOr<std::unique_ptr<SqliteDb>> OpenIndexDatabaseReadOnly(const std::string& path,
                                                                    absl::string_view volume) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 && errno == ENOENT) {
    return absl::NotFoundError(absl::StrCat("index database ", ShownDatabasePath(path), ": no such file"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db,
                   SqliteDb::Open(path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW));
  // The daemon may hold the write lock for a moment: wait for it as the writers do.
  sqlite3_busy_timeout(db->get(), 10000);
  absl::StatusOr<int64_t> version = CheckStamp(*db, path);
  if (NeedsRollback(version, *db)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "index database ", ShownDatabasePath(path), ": a btrdupd run was killed in the middle of writing it, "
        "and a read-only query does not repair it; run 'btrdupd ", volume,
        "' once to roll the interrupted write back"));
  }
  if (!version.ok()) return version.status();
  if (*version == 0) {
    return absl::NotFoundError(absl::StrCat("index database ", ShownDatabasePath(path),
                                            ": empty (btrdupd has not finished a first "
                                            "run on ", volume, ")"));
  }
  if (*version < kIndexSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "index database ", ShownDatabasePath(path), ": schema version ", *version,
        " is older than this btrdupd's (", kIndexSchemaVersion,
        "), and a read-only query does not upgrade it; run 'btrdupd ", volume,
        "' once to upgrade its index (the file was not changed)"));
  }
  return db;
}

}  // namespace btrdupd
