#include "daemon/index_recovery.h"

#include <stdio.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/log.h"

namespace btrdupd {
namespace {

// SQLite's companion files of a database, by suffix.
constexpr const char* kCompanions[] = {"-journal", "-wal", "-shm"};

std::optional<off_t> SizeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return std::nullopt;
  return st.st_size;
}

absl::Status Rename(const std::string& from, const std::string& to) {
  if (rename(from.c_str(), to.c_str()) == 0) return absl::OkStatus();
  const int err = errno;
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat("cannot move ", ShownDatabasePath(from), " aside to ",
                                   ShownDatabasePath(to), ": ",
                                   std::strerror(err)));
}

// Moves the database and its companions aside; returns the new name of the database.
absl::StatusOr<std::string> MoveAside(const std::string& db_path, absl::Time now) {
  const std::string aside = SetAsidePath(db_path, now);
  if (SizeOf(db_path).has_value()) {
    if (absl::Status s = Rename(db_path, aside); !s.ok()) return s;
  }
  for (const char* suffix : kCompanions) {
    const std::string companion = absl::StrCat(db_path, suffix);
    const std::optional<off_t> size = SizeOf(companion);
    if (!size.has_value() || *size == 0) continue;  // an empty journal holds nothing
    if (absl::Status s = Rename(companion, absl::StrCat(aside, suffix)); !s.ok()) return s;
  }
  return aside;
}

// Sets the damaged database aside and opens a new one with its salvaged flip records.
absl::StatusOr<std::unique_ptr<VolumeIndex>> Replace(const std::string& db_path,
                                                     const absl::Status& damage,
                                                     absl::string_view volume,
                                                     absl::Time now) {
  absl::StatusOr<std::vector<ReadOnlyFlip>> flips =
      VolumeIndex::SalvageReadOnlyFlips(db_path);
  absl::StatusOr<std::string> aside = MoveAside(db_path, now);
  if (!aside.ok()) {
    return absl::Status(aside.status().code(),
                        absl::StrCat(damage.message(), "; ", aside.status().message()));
  }
  LogError(volume,
           "THE INDEX DATABASE IS DAMAGED (%s): moved aside to %s; a new index is built "
           "by a full scan",
           damage.message(), ShownDatabasePath(*aside));
  if (!flips.ok()) {
    LogError(volume,
             "the records of read-only flags cleared by btrdupd could not be read from "
             "the damaged database (%s): check that every snapshot that should be "
             "read-only is (btrfs property get SNAPSHOT ro)",
             flips.status().message());
  }
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(db_path);
  if (!index.ok()) return index.status();
  if (flips.ok()) {
    for (const ReadOnlyFlip& flip : *flips) {
      if (absl::Status s = (*index)->RecordReadOnlyFlip(flip); !s.ok()) return s;
    }
    if (!flips->empty()) {
      LogWarning(volume,
                 "carried %d read-only flag record(s) over from the damaged database; "
                 "they are restored now",
                 flips->size());
    }
  }
  return index;
}

}  // namespace

std::string SetAsidePath(const std::string& db_path, absl::Time now) {
  return absl::StrCat(db_path, ".corrupt-",
                      absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone()));
}

absl::StatusOr<std::unique_ptr<VolumeIndex>> OpenIndexRecovering(const std::string& db_path,
                                                                  bool verify,
                                                                  absl::string_view volume,
                                                                  absl::Time now) {
  // A write-ahead log without its database: SQLite would delete it without a word.
  const std::string wal = absl::StrCat(db_path, "-wal");
  const std::optional<off_t> db_size = SizeOf(db_path);
  const std::optional<off_t> wal_size = SizeOf(wal);
  if (wal_size.has_value() && *wal_size > 0 && (!db_size.has_value() || *db_size == 0)) {
    const std::string aside = absl::StrCat(SetAsidePath(db_path, now), "-wal");
    if (absl::Status s = Rename(wal, aside); !s.ok()) return s;
    const std::string shm = absl::StrCat(db_path, "-shm");
    if (SizeOf(shm).has_value()) unlink(shm.c_str());
    LogError(volume,
             "THE INDEX DATABASE IS MISSING but its write-ahead log %s is there: moved "
             "aside to %s; a new index is built by a full scan",
             ShownDatabasePath(wal), ShownDatabasePath(aside));
  }
  // Opened first: a read-write connection rolls back the hot journal a killed run left,
  // which the read-only connection of Verify() could not.
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(db_path);
  if (absl::IsDataLoss(index.status())) return Replace(db_path, index.status(), volume, now);
  if (!index.ok() || !verify) return index;
  absl::Status checked = VolumeIndex::Verify(db_path);
  if (absl::IsDataLoss(checked)) {
    index->reset();
    return Replace(db_path, checked, volume, now);
  }
  if (!checked.ok()) {
    LogWarning(volume, "could not check the index database (used as it is): %s",
               checked.message());
  }
  return index;
}

}  // namespace btrdupd
