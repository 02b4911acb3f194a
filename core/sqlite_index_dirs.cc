// SqliteVolumeIndex: directories - the dirs table (one row per directory, by parent
// and name), their paths, listings, and the removal of a directory subtree with the
// files in it.

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/index_schema.h"
#include "core/sqlite_index.h"
#include "core/status_macros.h"

namespace btrdupd {
namespace {

constexpr char kDirAndBelow[] =
    "INSERT OR IGNORE INTO temp.doomed(id) "
    "WITH RECURSIVE sub(id) AS ("
    "  SELECT id FROM dirs WHERE id = ?1"
    "  UNION SELECT d.id FROM dirs d JOIN sub ON d.parent = sub.id)"
    " SELECT id FROM sub";

}  // namespace

absl::Status CheckEntryName(absl::string_view name, absl::string_view what) {
  if (name.empty() || name == "." || name == ".." ||
      name.find('/') != absl::string_view::npos ||
      name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("index: invalid ", what, " name \"", name,
                     "\" (must be non-empty, not . or .., without '/' or NUL)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SqliteVolumeIndex::EnsureDir(absl::string_view path,
                                                     uint64_t subvol_id, uint64_t ino) {
  std::vector<absl::string_view> parts;
  if (!path.empty()) parts = absl::StrSplit(path, '/');
  for (absl::string_view part : parts) {
    RETURN_IF_ERROR(CheckEntryName(part, "directory"));
  }
  int64_t result = kRootDirId;
  absl::Status status = Atomically([&]() -> absl::Status {
    int64_t id = kRootDirId;
    int64_t parent_subvol = static_cast<int64_t>(subvol_id);
    if (!parts.empty()) {
      ASSIGN_OR_RETURN(Statement root,
                         statements_.Get("SELECT subvol FROM dirs WHERE id = ?1"));
      root.Bind(1, kRootDirId);
      ASSIGN_OR_RETURN(bool found, root.Step());
      if (found) parent_subvol = root.ColumnInt(0);
    }
    for (size_t i = 0; i < parts.size(); ++i) {
      const bool last = i + 1 == parts.size();
      ASSIGN_OR_RETURN(Statement find,
                         statements_.Get("SELECT id, subvol, ino FROM dirs "
                                         "WHERE parent = ?1 AND name = ?2"));
      find.Bind(1, id).BindBlob(2, parts[i]);
      ASSIGN_OR_RETURN(bool found, find.Step());
      if (found) {
        const int64_t child = find.ColumnInt(0);
        const bool same = find.ColumnInt(1) == static_cast<int64_t>(subvol_id) &&
                          !find.ColumnIsNull(2) &&
                          find.ColumnInt(2) == static_cast<int64_t>(ino);
        if (last && !same) {
          ASSIGN_OR_RETURN(
              Statement update,
              statements_.Get("UPDATE dirs SET subvol = ?2, ino = ?3 WHERE id = ?1"));
          update.Bind(1, child).Bind(2, static_cast<int64_t>(subvol_id));
          if (ino == 0) {
            update.BindNull(3);
          } else {
            update.Bind(3, static_cast<int64_t>(ino));
          }
          RETURN_IF_ERROR(update.Run());
        }
        id = child;
        parent_subvol = last ? static_cast<int64_t>(subvol_id) : find.ColumnInt(1);
        continue;
      }
      ASSIGN_OR_RETURN(Statement insert,
                         statements_.Get("INSERT INTO dirs(parent, name, subvol, ino) "
                                         "VALUES (?1, ?2, ?3, ?4)"));
      // Intermediate directories created here belong to their parent's subvolume and
      // have an inode not known yet (NULL).
      insert.Bind(1, id).BindBlob(2, parts[i]).Bind(
          3, last ? static_cast<int64_t>(subvol_id) : parent_subvol);
      if (last && ino != 0) {
        insert.Bind(4, static_cast<int64_t>(ino));
      } else {
        insert.BindNull(4);
      }
      RETURN_IF_ERROR(insert.Run());
      id = sqlite3_last_insert_rowid(db_->get());
    }
    if (parts.empty() && ino != 0) {
      ASSIGN_OR_RETURN(
          Statement root,
          statements_.Get("UPDATE dirs SET subvol = ?2, ino = ?3 WHERE id = ?1 AND "
                          "(subvol IS NOT ?2 OR ino IS NOT ?3)"));
      root.Bind(1, kRootDirId)
          .Bind(2, static_cast<int64_t>(subvol_id))
          .Bind(3, static_cast<int64_t>(ino));
      RETURN_IF_ERROR(root.Run());
    }
    result = id;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::optional<int64_t>> SqliteVolumeIndex::FindDirByInode(uint64_t subvol_id,
                                                                         uint64_t ino) {
  ASSIGN_OR_RETURN(Statement q,
                     statements_.Get("SELECT id FROM dirs WHERE subvol = ?1 AND ino = ?2 "
                                     "ORDER BY id LIMIT 1"));
  q.Bind(1, static_cast<int64_t>(subvol_id)).Bind(2, static_cast<int64_t>(ino));
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::optional<int64_t>();
  return std::optional<int64_t>(q.ColumnInt(0));
}

absl::StatusOr<std::string> SqliteVolumeIndex::DirPath(int64_t dir_id) {
  absl::flat_hash_map<int64_t, std::string> memo;
  return DirPathMemo(dir_id, &memo);
}

absl::StatusOr<std::string> SqliteVolumeIndex::DirPathMemo(
    int64_t dir_id, absl::flat_hash_map<int64_t, std::string>* memo) {
  if (dir_id == kRootDirId) return std::string();
  if (auto it = memo->find(dir_id); it != memo->end()) return it->second;
  std::vector<std::string> names;  // leaf first
  int64_t id = dir_id;
  std::string prefix;
  constexpr int kMaxDepth = 4096;  // a cycle would be corruption; never loop forever
  for (int depth = 0; id != kRootDirId; ++depth) {
    if (auto it = memo->find(id); it != memo->end()) {
      prefix = it->second;
      break;
    }
    if (depth > kMaxDepth) {
      return absl::DataLossError(
          absl::StrCat("index: directory ", dir_id, " has no path to the root"));
    }
    ASSIGN_OR_RETURN(Statement q,
                       statements_.Get("SELECT parent, name FROM dirs WHERE id = ?1"));
    q.Bind(1, id);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row || q.ColumnIsNull(0)) {
      return absl::NotFoundError(absl::StrCat("index: no directory with id ", id));
    }
    names.push_back(q.ColumnBlob(1));
    id = q.ColumnInt(0);
  }
  std::string path = prefix;
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    if (!path.empty()) path += '/';
    path += *it;
  }
  (*memo)[dir_id] = path;
  return path;
}

absl::StatusOr<std::vector<DirEntryRecord>> SqliteVolumeIndex::ListDir(int64_t dir_id) {
  std::vector<DirEntryRecord> out;
  {
    ASSIGN_OR_RETURN(Statement exists, statements_.Get("SELECT 1 FROM dirs WHERE id = ?1"));
    exists.Bind(1, dir_id);
    ASSIGN_OR_RETURN(bool row, exists.Step());
    if (!row) return absl::NotFoundError(absl::StrCat("index: no directory with id ", dir_id));
  }
  // Subdirectories, then files, each by name.
  for (const bool is_dir : {true, false}) {
    ASSIGN_OR_RETURN(Statement q,
                     statements_.Get(is_dir ? "SELECT id, name FROM dirs "
                                              "WHERE parent = ?1 ORDER BY name"
                                            : "SELECT id, name FROM files "
                                              "WHERE dir = ?1 ORDER BY name"));
    q.Bind(1, dir_id);
    RETURN_IF_ERROR(q.ForEachRow([&]() -> absl::Status {
      out.push_back(DirEntryRecord{q.ColumnBlob(1), is_dir, q.ColumnInt(0)});
      return absl::OkStatus();
    }));
  }
  return out;
}

absl::Status SqliteVolumeIndex::RemoveDir(int64_t dir_id) {
  return Atomically([&]() -> absl::Status {
    RETURN_IF_ERROR(CollectDoomedDirs(kDirAndBelow, dir_id));
    RETURN_IF_ERROR(MaterializeDoomedCopies());
    RETURN_IF_ERROR(DeleteDoomedDirs());
    return ReleaseOrphanedDependents();
  });
}

absl::Status SqliteVolumeIndex::CollectDoomedDirs(const char* collect_sql, int64_t key) {
  {
    ASSIGN_OR_RETURN(Statement clear, statements_.Get("DELETE FROM temp.doomed"));
    RETURN_IF_ERROR(clear.Run());
  }
  ASSIGN_OR_RETURN(Statement collect, statements_.Get(collect_sql));
  collect.Bind(1, key);
  return collect.Run();
}

absl::Status SqliteVolumeIndex::DeleteDoomedDirs() {
  {
    ASSIGN_OR_RETURN(Statement files,
                       statements_.Get("DELETE FROM files WHERE dir IN "
                                       "(SELECT id FROM temp.doomed)"));
    RETURN_IF_ERROR(files.Run());
  }
  // The root row stays (its contents go): it is the fixed anchor of every path.
  ASSIGN_OR_RETURN(Statement dirs,
                     statements_.Get("DELETE FROM dirs WHERE id IN "
                                     "(SELECT id FROM temp.doomed) AND id != 1"));
  RETURN_IF_ERROR(dirs.Run());
  ASSIGN_OR_RETURN(Statement clear, statements_.Get("DELETE FROM temp.doomed"));
  return clear.Run();
}

}  // namespace btrdupd
