// A snapshot linked to its source (core/index.h, "Snapshots"): only what differs from
// the source gets rows, found by generation instead of by a walk.
//
// A snapshot created in transaction T is its source as of T; whatever either of them
// wrote later carries a transid > T. So the inodes where they may differ are the source's
// and the snapshot's inodes written after T (two TREE_SEARCHes with min_transid T + 1):
//  - a file written in either: the snapshot's copy (found at the source row's path, or
//    by INO_LOOKUP) gets a row of its own, or is recorded as missing;
//  - a directory written in either (entries added, removed or renamed): the snapshot's
//    copy is listed and compared by name and inode with the source's rows in the same
//    directory; what does not match gets rows (new subdirectories are walked whole),
//    source rows the snapshot lacks are recorded as missing.
// Everything else is the source's rows. Later passes compare only what the snapshot
// itself wrote since the last pass; changes in the source are handed over by the index
// when the source's rows change.

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/relative_path.h"
#include "core/scan_pass.h"

namespace btrdupd {
namespace {
std::pair<std::string, std::string> SplitLast(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace

absl::Status ScanPass::CompareSnapshot(const VolumeSubvolume& sub,
                                       const VolumeSubvolume& source, const VolumeDir& root,
                                       std::optional<uint64_t> source_since,
                                       uint64_t self_since) {
  SnapshotContext snap;
  snap.ctx.id = sub.id;
  snap.ctx.path = sub.path;
  snap.ctx.dev = root.self().dev;
  snap.ctx.generation = sub.generation;
  snap.source_id = source.id;
  snap.source_path = source.path;
  absl::StatusOr<int64_t> root_id = index_->EnsureDir(sub.path, sub.id, root.self().ino);
  if (!root_id.ok()) return root_id.status();
  RETURN_IF_ERROR(Wrote());

  absl::flat_hash_set<uint64_t> strict_files;  // written in the source: never implied
  std::vector<uint64_t> files;
  std::vector<uint64_t> dirs;
  if (source_since.has_value()) {
    absl::StatusOr<std::vector<InodeChange>> changes =
        fs_->ChangedInodesSince(source.path, *source_since);
    if (!changes.ok()) return changes.status();
    for (const InodeChange& c : *changes) {
      if (c.is_regular) {
        strict_files.insert(c.ino);
        files.push_back(c.ino);
      }
      if (c.is_dir) dirs.push_back(c.ino);
    }
  }
  absl::StatusOr<std::vector<InodeChange>> own = fs_->ChangedInodesSince(sub.path, self_since);
  if (!own.ok()) return own.status();
  for (const InodeChange& c : *own) {
    if (c.is_regular) files.push_back(c.ino);
    if (c.is_dir) dirs.push_back(c.ino);
  }
  snap.ctx.changed = *std::move(own);
  std::sort(snap.ctx.changed.begin(), snap.ctx.changed.end(),
            [](const InodeChange& a, const InodeChange& b) { return a.ino < b.ino; });
  for (auto* list : {&files, &dirs}) {
    std::sort(list->begin(), list->end());
    list->erase(std::unique(list->begin(), list->end()), list->end());
  }
  for (uint64_t ino : files) {
    RETURN_IF_ERROR(CheckStop());
    RETURN_IF_ERROR(CompareSnapshotFile(snap, ino, strict_files.contains(ino)));
  }
  for (uint64_t ino : dirs) {
    RETURN_IF_ERROR(CheckStop());
    RETURN_IF_ERROR(CompareSnapshotDir(snap, ino));
    ReportProgress(snap.ctx);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ScanPass::SnapshotDirRow(const SubvolumeContext& ctx,
                                                 const std::string& path) {
  if (path == ctx.path) {
    absl::StatusOr<VolumeStat> st = fs_->Stat(path);
    if (!st.ok()) return st.status();
    return index_->EnsureDir(path, ctx.id, st->ino);
  }
  absl::StatusOr<VolumeStat> st = fs_->Stat(path);
  if (!st.ok()) return st.status();
  absl::StatusOr<int64_t> id = index_->EnsureDir(path, ctx.id, st->ino);
  if (!id.ok()) return id.status();
  RETURN_IF_ERROR(Wrote());
  return *id;
}

absl::Status ScanPass::ObserveSnapshotFile(const SnapshotContext& snap,
                                           const std::string& path, const VolumeStat& st) {
  RETURN_IF_ERROR(index_->MarkSnapshotDiffers(snap.ctx.id, st.ino));
  snap.handled.insert(st.ino);
  ++report_->files_seen;
  if (st.size < config_.min_file_size || IsExcluded(path, EntryType::kRegular)) {
    return absl::OkStatus();
  }
  const auto [dir, name] = SplitLast(path);
  absl::StatusOr<int64_t> dir_id = SnapshotDirRow(snap.ctx, dir);
  if (!dir_id.ok()) {
    if (absl::IsNotFound(dir_id.status())) return absl::OkStatus();
    AddError(dir_id.status());
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<FileRecord>> known = index_->FindFile(*dir_id, name);
  if (!known.ok()) return known.status();
  return ObserveIfChanged(snap.ctx, *dir_id, name, st, 0,
                          known->has_value() ? &**known : nullptr);
}

absl::Status ScanPass::CompareSnapshotFile(const SnapshotContext& snap, uint64_t ino,
                                           bool strict) {
  if (snap.handled.contains(ino)) return absl::OkStatus();
  absl::StatusOr<std::vector<FileRecord>> rows = index_->FindFilesByInode(snap.source_id, ino);
  if (!rows.ok()) return rows.status();
  // Where the snapshot holds it: at the source row's place, else wherever INO_LOOKUP says.
  std::optional<std::string> path;
  VolumeStat st;
  const FileRecord* same_place = nullptr;
  for (const FileRecord& row : *rows) {
    std::optional<std::string> relative =
        row.path == snap.source_path ? std::string() : PathBelow(row.path, snap.source_path);
    if (!relative.has_value()) continue;
    const std::string candidate = JoinVolumePath(snap.ctx.path, *relative);
    absl::StatusOr<VolumeStat> found = fs_->Stat(candidate);
    if (found.ok() && found->type == EntryType::kRegular && found->ino == ino) {
      path = candidate;
      st = *found;
      same_place = &row;
      break;
    }
  }
  if (!path.has_value()) {
    absl::StatusOr<std::string> relative = fs_->InodePath(snap.ctx.path, ino);
    if (relative.ok()) {
      const std::string candidate = JoinVolumePath(snap.ctx.path, *relative);
      absl::StatusOr<VolumeStat> found = fs_->Stat(candidate);
      if (found.ok() && found->type == EntryType::kRegular && found->ino == ino) {
        path = candidate;
        st = *found;
      }
    } else if (!absl::IsNotFound(relative.status())) {
      AddError(relative.status());
    }
  }
  if (!path.has_value()) {
    // Not in the snapshot (created in the source later, or deleted in the snapshot).
    snap.handled.insert(ino);
    return index_->MarkSnapshotDiffers(snap.ctx.id, ino);
  }
  if (!strict && same_place != nullptr &&
      SameContent(*same_place, st.size, st.mtime_ns, st.ctime_ns)) {
    return absl::OkStatus();  // rewritten in place with what the source has (a dedupe)
  }
  // The snapshot's own row, if it has one elsewhere, goes: this is where it is now.
  absl::StatusOr<std::vector<FileRecord>> mine = index_->FindFilesByInode(snap.ctx.id, ino);
  if (!mine.ok()) return mine.status();
  for (const FileRecord& row : *mine) {
    if (row.path != *path) RETURN_IF_ERROR(RemoveFileRow(row.id));
  }
  return ObserveSnapshotFile(snap, *path, st);
}

absl::Status ScanPass::CompareSnapshotDir(const SnapshotContext& snap, uint64_t ino) {
  std::string relative;
  if (ino != kSnapshotRootInode) {
    absl::StatusOr<std::string> found = fs_->InodePath(snap.ctx.path, ino);
    if (!found.ok()) {
      if (!absl::IsNotFound(found.status())) AddError(found.status());
      return absl::OkStatus();  // not in the snapshot: its files are not either
    }
    relative = *found;
  }
  const std::string path = JoinVolumePath(snap.ctx.path, relative);
  absl::StatusOr<std::unique_ptr<VolumeDir>> dir = fs_->OpenDir(path);
  if (!dir.ok()) {
    if (!absl::IsNotFound(dir.status())) AddError(dir.status());
    return absl::OkStatus();
  }
  if ((*dir)->self().ino != ino || (*dir)->self().dev != snap.ctx.dev) return absl::OkStatus();
  absl::StatusOr<std::vector<VolumeDirEntry>> entries = (*dir)->ReadEntries();
  if (!entries.ok()) {
    AddError(entries.status());
    return absl::OkStatus();
  }
  ++report_->dirs_listed;

  // The source's rows of the same directory at the same place, by name.
  absl::flat_hash_map<std::string, DirEntryRecord> source_rows;
  {
    absl::StatusOr<std::optional<int64_t>> source_dir =
        index_->FindDirByInode(snap.source_id, ino);
    if (!source_dir.ok()) return source_dir.status();
    if (source_dir->has_value()) {
      absl::StatusOr<std::string> source_path = index_->DirPath(**source_dir);
      if (!source_path.ok()) return source_path.status();
      if (*source_path == JoinVolumePath(snap.source_path, relative)) {
        absl::StatusOr<std::vector<DirEntryRecord>> rows = index_->ListDir(**source_dir);
        if (!rows.ok()) return rows.status();
        for (DirEntryRecord& row : *rows) source_rows.emplace(row.name, std::move(row));
      }
    }
  }
  // The snapshot's own rows of this directory, by name.
  absl::flat_hash_map<std::string, DirEntryRecord> own_rows;
  {
    absl::StatusOr<std::optional<int64_t>> own_dir = index_->FindDirByInode(snap.ctx.id, ino);
    if (!own_dir.ok()) return own_dir.status();
    if (own_dir->has_value()) {
      absl::StatusOr<std::vector<DirEntryRecord>> rows = index_->ListDir(**own_dir);
      if (!rows.ok()) return rows.status();
      for (DirEntryRecord& row : *rows) own_rows.emplace(row.name, std::move(row));
    }
  }

  for (const VolumeDirEntry& entry : *entries) {
    if (entry.type != EntryType::kRegular && entry.type != EntryType::kDirectory &&
        entry.type != EntryType::kUnknown) {
      continue;
    }
    absl::StatusOr<VolumeStat> st = (*dir)->StatEntry(entry.name);
    if (!st.ok()) continue;  // vanished: nothing to record
    const std::string child = JoinVolumePath(path, entry.name);
    auto source_row = source_rows.find(entry.name);
    if (st->type == EntryType::kRegular) {
      own_rows.erase(entry.name);
      if (source_row != source_rows.end() && !source_row->second.is_dir) {
        absl::StatusOr<std::optional<FileRecord>> row = index_->GetFile(source_row->second.id);
        if (!row.ok()) return row.status();
        const bool same = row->has_value() && (*row)->ino == st->ino;
        source_rows.erase(source_row);
        if (same) continue;  // the source's row stands for it (or it was compared above)
      }
      if (snap.handled.contains(st->ino)) continue;
      RETURN_IF_ERROR(ObserveSnapshotFile(snap, child, *st));
    } else if (st->type == EntryType::kDirectory) {
      own_rows.erase(entry.name);
      if (st->dev != snap.ctx.dev) continue;  // another subvolume or mount
      if (source_row != source_rows.end() && source_row->second.is_dir) {
        absl::StatusOr<std::optional<int64_t>> same =
            index_->FindDirByInode(snap.source_id, st->ino);
        if (!same.ok()) return same.status();
        const bool same_dir = same->has_value() && **same == source_row->second.id;
        source_rows.erase(source_row);
        if (same_dir) continue;  // the same directory; its own changes come by inode
      }
      RETURN_IF_ERROR(WalkSnapshotSubtree(snap, child));
    }
  }
  // Source rows the snapshot does not hold here: recorded as missing.
  for (const auto& [name, row] : source_rows) {
    RETURN_IF_ERROR(MarkSourceRowsMissing(snap, row));
  }
  // The snapshot's own rows for names gone from it.
  for (const auto& [name, row] : own_rows) {
    RETURN_IF_ERROR(RemoveEntryRow(row));
  }
  return absl::OkStatus();
}

absl::Status ScanPass::MarkSourceRowsMissing(const SnapshotContext& snap,
                                             const DirEntryRecord& row) {
  std::vector<DirEntryRecord> stack = {row};
  while (!stack.empty()) {
    DirEntryRecord at = std::move(stack.back());
    stack.pop_back();
    if (!at.is_dir) {
      absl::StatusOr<std::optional<FileRecord>> file = index_->GetFile(at.id);
      if (!file.ok()) return file.status();
      if (file->has_value() && !snap.handled.contains((*file)->ino)) {
        RETURN_IF_ERROR(index_->MarkSnapshotDiffers(snap.ctx.id, (*file)->ino));
        RETURN_IF_ERROR(Wrote());
      }
      continue;
    }
    absl::StatusOr<std::vector<DirEntryRecord>> rows = index_->ListDir(at.id);
    if (!rows.ok()) return rows.status();
    for (DirEntryRecord& r : *rows) stack.push_back(std::move(r));
  }
  return absl::OkStatus();
}

absl::Status ScanPass::WalkSnapshotSubtree(const SnapshotContext& snap,
                                           const std::string& start) {
  std::vector<std::string> queue = {start};
  while (!queue.empty()) {
    RETURN_IF_ERROR(CheckStop());
    const std::string path = std::move(queue.back());
    queue.pop_back();
    absl::StatusOr<std::unique_ptr<VolumeDir>> dir = fs_->OpenDir(path);
    if (!dir.ok()) {
      if (!absl::IsNotFound(dir.status())) AddError(dir.status());
      continue;
    }
    if ((*dir)->self().dev != snap.ctx.dev) continue;
    absl::StatusOr<std::vector<VolumeDirEntry>> entries = (*dir)->ReadEntries();
    if (!entries.ok()) {
      AddError(entries.status());
      continue;
    }
    ++report_->dirs_listed;
    for (const VolumeDirEntry& entry : *entries) {
      if (entry.type != EntryType::kRegular && entry.type != EntryType::kDirectory &&
          entry.type != EntryType::kUnknown) {
        continue;
      }
      absl::StatusOr<VolumeStat> st = (*dir)->StatEntry(entry.name);
      if (!st.ok()) continue;
      const std::string child = JoinVolumePath(path, entry.name);
      if (st->type == EntryType::kRegular) {
        if (snap.handled.contains(st->ino)) continue;
        RETURN_IF_ERROR(ObserveSnapshotFile(snap, child, *st));
      } else if (st->type == EntryType::kDirectory && st->dev == snap.ctx.dev &&
                 !IsExcluded(child, EntryType::kDirectory)) {
        queue.push_back(child);
      }
    }
    ReportProgress(snap.ctx);
  }
  return absl::OkStatus();
}

}  // namespace btrdupd
