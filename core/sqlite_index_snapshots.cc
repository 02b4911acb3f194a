// SqliteVolumeIndex: snapshots that share their source's rows (core/index.h, "Snapshots").
//
// A linked snapshot has rows only where it differs from its source (snap_diff). Before a
// source row changes or goes, MaterializeCopies gives its implied copies rows of their
// own, so the link stays true without ever touching the unchanged files.

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/index_schema.h"
#include "core/relative_path.h"
#include "core/sqlite_index.h"
#include "core/status_macros.h"

namespace btrdupd {
absl::StatusOr<std::vector<SqliteVolumeIndex::Dependent>> SqliteVolumeIndex::Dependents(
    uint64_t source_id) {
  ASSIGN_OR_RETURN(Statement q,
                     statements_.Get("SELECT id, path, source_gen FROM subvols "
                                     "WHERE source = ?1 ORDER BY id"));
  q.Bind(1, static_cast<int64_t>(source_id));
  std::vector<Dependent> out;
  RETURN_IF_ERROR(q.ForEachRow([&]() -> absl::Status {
    out.push_back(Dependent{static_cast<uint64_t>(q.ColumnInt(0)), q.ColumnBlob(1),
                            static_cast<uint64_t>(q.ColumnInt(2))});
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<bool> SqliteVolumeIndex::SnapshotDiffers(uint64_t subvol_id, uint64_t ino) {
  ASSIGN_OR_RETURN(Statement q, statements_.Get("SELECT 1 FROM snap_diff "
                                                  "WHERE subvol = ?1 AND ino = ?2"));
  q.Bind(1, static_cast<int64_t>(subvol_id)).Bind(2, static_cast<int64_t>(ino));
  return q.Step();
}

absl::StatusOr<std::optional<std::string>> SqliteVolumeIndex::SubvolumePath(
    uint64_t subvol_id) {
  ASSIGN_OR_RETURN(Statement q, statements_.Get("SELECT path FROM subvols WHERE id = ?1"));
  q.Bind(1, static_cast<int64_t>(subvol_id));
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(q.ColumnBlob(0));
}

absl::Status SqliteVolumeIndex::SetSnapshotSource(uint64_t subvol_id, uint64_t source_id,
                                                  uint64_t source_generation) {
  return Atomically([&]() -> absl::Status {
    ASSIGN_OR_RETURN(Statement q,
                       statements_.Get("UPDATE subvols SET source = ?2, source_gen = ?3 "
                                       "WHERE id = ?1"));
    q.Bind(1, static_cast<int64_t>(subvol_id));
    if (source_id == 0) {
      q.BindNull(2).BindNull(3);
    } else {
      q.Bind(2, static_cast<int64_t>(source_id))
          .Bind(3, static_cast<int64_t>(source_generation));
    }
    RETURN_IF_ERROR(
        q.RunOnExistingRow(absl::StrCat("index: subvolume ", subvol_id, " is not recorded")));
    if (source_id != 0) return absl::OkStatus();
    ASSIGN_OR_RETURN(Statement forget,
                       statements_.Get("DELETE FROM snap_diff WHERE subvol = ?1"));
    forget.Bind(1, static_cast<int64_t>(subvol_id));
    return forget.Run();
  });
}

absl::Status SqliteVolumeIndex::MarkSnapshotDiffers(uint64_t subvol_id, uint64_t ino) {
  ASSIGN_OR_RETURN(Statement q, statements_.Get("INSERT OR IGNORE INTO snap_diff(subvol, "
                                                  "ino) VALUES (?1, ?2)"));
  q.Bind(1, static_cast<int64_t>(subvol_id)).Bind(2, static_cast<int64_t>(ino));
  return q.Run();
}

absl::StatusOr<std::vector<ImpliedCopy>> SqliteVolumeIndex::ImpliedCopies(
    const FileRecord& file) {
  std::vector<ImpliedCopy> out;
  ASSIGN_OR_RETURN(std::optional<std::string> base, SubvolumePath(file.subvol_id));
  if (!base.has_value()) return out;
  const std::optional<std::string> relative = PathBelow(file.path, *base);
  if (!relative.has_value()) return out;
  // The generation check applies to the first hop only: deeper snapshots hold what their
  // (unchanged) source copy holds.
  std::vector<uint64_t> sources = {file.subvol_id};
  for (size_t i = 0; i < sources.size(); ++i) {
    ASSIGN_OR_RETURN(std::vector<Dependent> dependents, Dependents(sources[i]));
    for (const Dependent& d : dependents) {
      if (i == 0 && file.generation > d.source_generation) continue;
      ASSIGN_OR_RETURN(bool differs, SnapshotDiffers(d.id, file.ino));
      if (differs) continue;
      out.push_back(ImpliedCopy{d.id, JoinPath(d.path, *relative)});
      sources.push_back(d.id);
    }
  }
  return out;
}

absl::StatusOr<int64_t> SqliteVolumeIndex::EnsureSnapshotDir(absl::string_view path,
                                                             uint64_t subvol_id) {
  // Like EnsureDir, but never changes a row that exists (its inode may be known).
  int64_t id = kRootDirId;
  if (path.empty()) return id;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    ASSIGN_OR_RETURN(Statement find, statements_.Get("SELECT id FROM dirs "
                                                       "WHERE parent = ?1 AND name = ?2"));
    find.Bind(1, id).BindBlob(2, part);
    ASSIGN_OR_RETURN(bool found, find.Step());
    if (found) {
      id = find.ColumnInt(0);
      continue;
    }
    ASSIGN_OR_RETURN(Statement insert,
                       statements_.Get("INSERT INTO dirs(parent, name, subvol, ino) "
                                       "VALUES (?1, ?2, ?3, NULL)"));
    insert.Bind(1, id).BindBlob(2, part).Bind(3, static_cast<int64_t>(subvol_id));
    RETURN_IF_ERROR(insert.Run());
    id = sqlite3_last_insert_rowid(db_->get());
  }
  return id;
}

absl::Status SqliteVolumeIndex::CopyRowInto(const FileRecord& row, uint64_t subvol_id,
                                            const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash);
  ASSIGN_OR_RETURN(int64_t dir_id, EnsureSnapshotDir(dir, subvol_id));
  // gen 0: the copy is older than any comparison a deeper snapshot was linked at. The
  // dedupe state starts over (the engine sees with FIEMAP what the copy shares).
  ASSIGN_OR_RETURN(
      Statement q,
      statements_.Get("INSERT OR IGNORE INTO files(dir, name, subvol, ino, size, mtime, gen, "
                      "first_seen, last_changed, next_eligible, backoff, hash_state, hash, "
                      "ctime_delta) "
                      "SELECT ?2, ?3, ?4, ino, size, mtime, 0, first_seen, last_changed, "
                      "next_eligible, 0, hash_state, hash, ctime_delta FROM files "
                      "WHERE id = ?1"));
  q.Bind(1, row.id)
      .Bind(2, dir_id)
      .BindBlob(3, slash == std::string::npos ? path : path.substr(slash + 1))
      .Bind(4, static_cast<int64_t>(subvol_id));
  return q.Run();
}

absl::Status SqliteVolumeIndex::MaterializeCopies(const FileRecord& row) {
  ASSIGN_OR_RETURN(std::vector<Dependent> dependents, Dependents(row.subvol_id));
  if (dependents.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::optional<std::string> base, SubvolumePath(row.subvol_id));
  if (!base.has_value()) return absl::OkStatus();
  const std::optional<std::string> relative = PathBelow(row.path, *base);
  if (!relative.has_value()) return absl::OkStatus();
  for (const Dependent& d : dependents) {
    if (row.generation > d.source_generation) continue;  // not in the snapshot
    ASSIGN_OR_RETURN(bool differs, SnapshotDiffers(d.id, row.ino));
    if (differs) continue;
    RETURN_IF_ERROR(MarkSnapshotDiffers(d.id, row.ino));
    RETURN_IF_ERROR(CopyRowInto(row, d.id, JoinPath(d.path, *relative)));
  }
  return absl::OkStatus();
}

absl::Status SqliteVolumeIndex::MaterializeCopiesOf(int64_t file_id) {
  ASSIGN_OR_RETURN(Statement has,
                     statements_.Get("SELECT 1 FROM subvols WHERE source = "
                                     "(SELECT subvol FROM files WHERE id = ?1) LIMIT 1"));
  has.Bind(1, file_id);
  ASSIGN_OR_RETURN(bool any, has.Step());
  if (!any) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::optional<FileRecord> row, GetFile(file_id));
  if (!row.has_value()) return absl::OkStatus();
  return MaterializeCopies(*row);
}

absl::Status SqliteVolumeIndex::MaterializeDoomedCopies() {
  ASSIGN_OR_RETURN(
      Statement q,
      statements_.Get("SELECT " BTRDUPD_FILE_COLUMNS " FROM files WHERE dir IN "
                      "(SELECT id FROM temp.doomed) AND subvol IN "
                      "(SELECT source FROM subvols WHERE source IS NOT NULL)"));
  ASSIGN_OR_RETURN(std::vector<FileRecord> rows, ReadFiles(q));
  for (const FileRecord& row : rows) {
    RETURN_IF_ERROR(MaterializeCopies(row));
  }
  return absl::OkStatus();
}

absl::Status SqliteVolumeIndex::HandDownSnapshot(uint64_t subvol_id) {
  ASSIGN_OR_RETURN(std::vector<Dependent> dependents, Dependents(subvol_id));
  if (dependents.empty()) return absl::OkStatus();
  uint64_t source = 0;
  uint64_t source_gen = 0;
  {
    ASSIGN_OR_RETURN(Statement q, statements_.Get("SELECT source, source_gen FROM subvols "
                                                    "WHERE id = ?1"));
    q.Bind(1, static_cast<int64_t>(subvol_id));
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row && !q.ColumnIsNull(0)) {
      source = static_cast<uint64_t>(q.ColumnInt(0));
      source_gen = static_cast<uint64_t>(q.ColumnInt(1));
    }
  }
  ASSIGN_OR_RETURN(std::optional<std::string> base, SubvolumePath(subvol_id));
  for (const Dependent& d : dependents) {
    if (source == 0 || !base.has_value()) {
      // The going subvolume had rows for every file: the dependent is walked whole again
      // (last_generation 0) and keeps the rows it has.
      RETURN_IF_ERROR(SetSnapshotSource(d.id, 0, 0));
      ASSIGN_OR_RETURN(Statement rescan, statements_.Get("UPDATE subvols SET "
                                                           "last_generation = 0 WHERE id = ?1"));
      rescan.Bind(1, static_cast<int64_t>(d.id));
      RETURN_IF_ERROR(rescan.Run());
      continue;
    }
    // The dependent now differs from the grandparent wherever the going one did: its
    // differences and (for files the dependent holds) its rows are handed down.
    std::vector<uint64_t> inos;
    {
      ASSIGN_OR_RETURN(Statement q, statements_.Get("SELECT ino FROM snap_diff WHERE "
                                                      "subvol = ?1 AND ino NOT IN (SELECT ino "
                                                      "FROM snap_diff WHERE subvol = ?2)"));
      q.Bind(1, static_cast<int64_t>(subvol_id)).Bind(2, static_cast<int64_t>(d.id));
      RETURN_IF_ERROR(q.ForEachRow([&]() -> absl::Status {
        inos.push_back(static_cast<uint64_t>(q.ColumnInt(0)));
        return absl::OkStatus();
      }));
    }
    for (uint64_t ino : inos) {
      RETURN_IF_ERROR(MarkSnapshotDiffers(d.id, ino));
      ASSIGN_OR_RETURN(std::vector<FileRecord> rows, FindFilesByInode(subvol_id, ino));
      for (const FileRecord& row : rows) {
        if (row.generation > d.source_generation) continue;  // written after d was taken
        const std::optional<std::string> relative = PathBelow(row.path, *base);
        if (!relative.has_value()) continue;
        RETURN_IF_ERROR(CopyRowInto(row, d.id, JoinPath(d.path, *relative)));
      }
    }
    // d holds what the going snapshot held: the grandparent's rows up to its comparison.
    RETURN_IF_ERROR(SetSnapshotSource(d.id, source, source_gen));
  }
  return absl::OkStatus();
}

}  // namespace btrdupd
