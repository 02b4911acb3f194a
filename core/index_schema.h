// The volume index's on-disk schema, its version stamp and its migrations; used only by
// core/sqlite_index*.cc.
//
// A btrdupd database carries PRAGMA application_id = kIndexApplicationId and
// PRAGMA user_version = its schema version (core/index.h, kIndexSchemaVersion).
//
// OpenIndexDatabase(path) contract:
//  - a missing or empty file becomes a new database with the current schema;
//  - a file at an older version is migrated, step by step, in one transaction;
//  - everything else is refused with FailedPrecondition and left byte-for-byte as it
//    was: a file that is not SQLite, one stamped with another application's id, one with
//    tables but no btrdupd stamp, and one whose version is newer than this build's.
//    The check runs on a read-only connection before anything is written.
//  - the connection is set up with a rollback journal (TRUNCATE; never WAL, whose
//    memory-mapped index faults with SIGBUS on a full volume), no memory map,
//    synchronous=NORMAL, foreign_keys=ON and a busy timeout, on every open.

#ifndef BTRDUPD_CORE_INDEX_SCHEMA_H_
#define BTRDUPD_CORE_INDEX_SCHEMA_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/sqlite_statement.h"

namespace btrdupd {

// The page cache of a connection (PRAGMA cache_size, in KiB; see OpenIndexDatabase),
// and the smaller one a VACUUM runs with.
inline constexpr int kIndexCacheKiB = 6144;
inline constexpr int kVacuumCacheKiB = 1024;

// The fixed id of the volume root's directory row (path "").
inline constexpr int64_t kRootDirId = 1;

absl::StatusOr<std::unique_ptr<SqliteDb>> OpenIndexDatabase(const std::string& path);

// OpenIndexDatabaseReadOnly(path, volume): a read-only connection for queries; nothing
// is created, migrated, converted or rolled back. Refused as above, and also: NotFound
// when there is no file (or an empty one), FailedPrecondition for an older version or a
// hot journal, with a message telling the user to run btrdupd once on `volume`.
absl::StatusOr<std::unique_ptr<SqliteDb>> OpenIndexDatabaseReadOnly(const std::string& path,
                                                                    absl::string_view volume);

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_INDEX_SCHEMA_H_
