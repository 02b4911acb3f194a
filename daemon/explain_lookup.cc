#include "daemon/explain_lookup.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/relative_path.h"
#include "core/status_macros.h"

namespace btrdupd {
namespace {
const SubvolumeRecord* ById(const std::vector<SubvolumeRecord>& subvolumes, uint64_t id) {
  for (const SubvolumeRecord& s : subvolumes) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::optional<FileRecord>> FindFileByPath(VolumeIndex& index,
                                                         absl::string_view path) {
  const size_t slash = path.rfind('/');
  const absl::string_view dir = slash == absl::string_view::npos ? "" : path.substr(0, slash);
  const absl::string_view name = slash == absl::string_view::npos ? path : path.substr(slash + 1);
  int64_t id = 1;  // the volume root
  if (!dir.empty()) {
    for (absl::string_view part : absl::StrSplit(dir, '/')) {
      ASSIGN_OR_RETURN(std::vector<DirEntryRecord> entries, index.ListDir(id));
      bool found = false;
      for (const DirEntryRecord& e : entries) {
        if (e.is_dir && e.name == part) {
          id = e.id;
          found = true;
          break;
        }
      }
      if (!found) return std::optional<FileRecord>();
    }
  }
  return index.FindFile(id, name);
}

absl::StatusOr<std::optional<FileRecord>> FindImpliedSource(VolumeIndex& index,
                                                            const std::string& path) {
  ASSIGN_OR_RETURN(std::vector<SubvolumeRecord> subvolumes, index.ListSubvolumes());
  // The subvolume that holds `path`: the deepest one above it.
  const SubvolumeRecord* holder = nullptr;
  for (const SubvolumeRecord& s : subvolumes) {
    if (PathBelow(path, s.path).has_value() &&
        (holder == nullptr || s.path.size() > holder->path.size())) {
      holder = &s;
    }
  }
  std::string at_path = path;
  const SubvolumeRecord* at = holder;
  // A chain is at most as long as the list of subvolumes (guards against a loop).
  for (size_t hops = 0; at != nullptr && at->source_id != 0 && hops < subvolumes.size();
       ++hops) {
    const SubvolumeRecord* source = ById(subvolumes, at->source_id);
    if (source == nullptr) break;
    const std::optional<std::string> inside = PathBelow(at_path, at->path);
    if (!inside.has_value()) break;
    at_path = JoinPath(source->path, *inside);
    ASSIGN_OR_RETURN(std::optional<FileRecord> row, FindFileByPath(index, at_path));
    if (row.has_value()) {
      ASSIGN_OR_RETURN(std::vector<ImpliedCopy> copies, index.ImpliedCopies(*row));
      for (const ImpliedCopy& copy : copies) {
        if (copy.subvol_id == holder->id && copy.path == path) return row;
      }
      return std::optional<FileRecord>();
    }
    at = source;
  }
  return std::optional<FileRecord>();
}

}  // namespace btrdupd
