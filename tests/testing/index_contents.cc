#include "tests/testing/index_contents.h"

#include <utility>
#include <vector>

#include "core/volume_fs.h"

namespace btrdupd {
namespace testing {

absl::StatusOr<std::map<std::string, IndexedFile>> IndexContents(VolumeIndex* index) {
  std::map<std::string, IndexedFile> out;
  std::vector<FileRecord> rows;
  absl::StatusOr<int64_t> root = index->EnsureDir("", 0, 0);
  if (!root.ok()) return root.status();
  std::vector<std::pair<int64_t, std::string>> queue = {{*root, ""}};
  while (!queue.empty()) {
    auto [dir_id, path] = queue.back();
    queue.pop_back();
    absl::StatusOr<std::vector<DirEntryRecord>> entries = index->ListDir(dir_id);
    if (!entries.ok()) return entries.status();
    for (const DirEntryRecord& entry : *entries) {
      const std::string child = JoinVolumePath(path, entry.name);
      if (entry.is_dir) {
        queue.emplace_back(entry.id, child);
        continue;
      }
      absl::StatusOr<std::optional<FileRecord>> file = index->GetFile(entry.id);
      if (!file.ok()) return file.status();
      if (!file->has_value()) continue;
      out[child] = IndexedFile{(*file)->subvol_id, (*file)->ino, (*file)->size,
                               (*file)->mtime_ns};
      rows.push_back(**file);
    }
  }
  for (const FileRecord& row : rows) {
    absl::StatusOr<std::vector<ImpliedCopy>> copies = index->ImpliedCopies(row);
    if (!copies.ok()) return copies.status();
    for (const ImpliedCopy& copy : *copies) {
      out.emplace(copy.path, IndexedFile{copy.subvol_id, row.ino, row.size, row.mtime_ns});
    }
  }
  return out;
}

}  // namespace testing
}  // namespace btrdupd
