// The incremental pass over one subvolume: only what changed since the last pass.
//
// 1. Every changed directory the index knows is re-listed at its recorded path (checked
//    to still be that inode). Rows for names no longer there (deleted, renamed away, or
//    now something else) are removed at once; names that are new, or whose inode changed,
//    become candidates. A recorded path that no longer leads to the directory means it
//    or an ancestor moved: the old parent of whatever moved is itself a changed
//    directory and drops it, and the new parent brings it back by walking it, so
//    nothing needs resolving by inode. Changed directories the index does not know are
//    new: an ancestor the index knows lists them.
// 2. Candidates are applied after all removals (so a directory moved within the pass is
//    gone from its old place before it is added at the new one): new files observed, new
//    directories walked whole.
// 3. Changed files outside the re-listed directories (modified in place) are re-statted
//    at their recorded paths, unless the size, mtime and ctime their inode item holds
//    are the row's (SameContent, core/index_records.h: a dedupe): then nothing is done.

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/scan_pass.h"

namespace btrdupd {

absl::Status ScanPass::UpdateSubvolume(const VolumeSubvolume& sub, const VolumeDir& root,
                                       uint64_t since_generation) {
  SubvolumeContext ctx;
  ctx.id = sub.id;
  ctx.path = sub.path;
  ctx.dev = root.self().dev;
  ctx.generation = sub.generation;
  absl::StatusOr<std::vector<InodeChange>> changes =
      fs_->ChangedInodesSince(sub.path, since_generation);
  if (!changes.ok()) return changes.status();
  ctx.changed = *std::move(changes);
  std::sort(ctx.changed.begin(), ctx.changed.end(),
            [](const InodeChange& a, const InodeChange& b) { return a.ino < b.ino; });
  std::vector<uint64_t> dirs;
  for (const InodeChange& change : ctx.changed) {
    if (change.is_dir) dirs.push_back(change.ino);
  }

  std::vector<RelistedDir> relisted;
  absl::flat_hash_set<int64_t> relisted_ids;
  for (uint64_t ino : dirs) {
    RETURN_IF_ERROR(CheckStop());
    RETURN_IF_ERROR(RelistChangedDir(ctx, ino, &relisted, &relisted_ids));
    ReportProgress(ctx);
  }
  for (const RelistedDir& dir : relisted) {
    RETURN_IF_ERROR(CheckStop());
    RETURN_IF_ERROR(ApplyCandidates(ctx, dir));
  }
  for (const InodeChange& change : ctx.changed) {
    if (!change.is_regular) continue;
    RETURN_IF_ERROR(RestatChangedFile(ctx, change.ino, relisted_ids));
  }
  ReportProgress(ctx);
  return absl::OkStatus();
}

absl::Status ScanPass::RelistChangedDir(const SubvolumeContext& ctx, uint64_t ino,
                                        std::vector<RelistedDir>* out,
                                        absl::flat_hash_set<int64_t>* relisted) {
  absl::StatusOr<std::optional<int64_t>> dir_id = index_->FindDirByInode(ctx.id, ino);
  if (!dir_id.ok()) return dir_id.status();
  if (!dir_id->has_value()) return absl::OkStatus();  // new: an ancestor lists it
  absl::StatusOr<std::string> path = index_->DirPath(**dir_id);
  if (!path.ok()) return path.status();
  absl::StatusOr<std::unique_ptr<VolumeDir>> dir = fs_->OpenDir(*path);
  if (!dir.ok()) {
    // Deleted or moved: its old parent changed too and handles it.
    if (!absl::IsNotFound(dir.status())) AddError(dir.status());
    return absl::OkStatus();
  }
  if ((*dir)->self().ino != ino || (*dir)->self().dev != ctx.dev) {
    return absl::OkStatus();  // moved (or an ancestor did): handled through its parents
  }
  absl::StatusOr<std::vector<VolumeDirEntry>> entries = (*dir)->ReadEntries();
  if (!entries.ok()) {
    AddError(entries.status());
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<DirEntryRecord>> rows = index_->ListDir(**dir_id);
  if (!rows.ok()) return rows.status();
  ++report_->dirs_listed;
  relisted->insert(**dir_id);
  absl::flat_hash_map<std::string, DirEntryRecord> unclaimed;
  unclaimed.reserve(rows->size());
  for (DirEntryRecord& row : *rows) unclaimed.emplace(row.name, std::move(row));

  RelistedDir result{**dir_id, *path, ino, {}};
  for (const VolumeDirEntry& entry : *entries) {
    if (IsStateDir(ctx, *path, entry.name)) continue;
    EntryType type = entry.type;
    if (type == EntryType::kUnknown) {
      absl::StatusOr<VolumeStat> st = (*dir)->StatEntry(entry.name);
      if (!st.ok()) continue;  // vanished (its row goes) or unreadable (next pass)
      type = st->type;
    }
    // Excluded: its row (if any) goes below, nothing under it is looked at.
    if (IsExcluded(JoinVolumePath(*path, entry.name), type)) continue;
    auto row_it = unclaimed.find(entry.name);
    const DirEntryRecord* row = row_it == unclaimed.end() ? nullptr : &row_it->second;
    if (type == EntryType::kRegular) {
      if (row != nullptr && !row->is_dir) {
        // A known name: only an inode written since the last pass needs a look.
        if (ctx.FindChanged(entry.ino) != nullptr) {
          result.candidates.push_back({entry.name, row->id});
        }
        unclaimed.erase(row_it);
        continue;
      }
      if (row != nullptr) {  // was a directory
        RETURN_IF_ERROR(RemoveDirRow(row->id));
        unclaimed.erase(row_it);
      }
      result.candidates.push_back({entry.name, 0});
    } else if (type == EntryType::kDirectory) {
      if (row != nullptr && row->is_dir) {
        absl::StatusOr<std::optional<int64_t>> same = index_->FindDirByInode(ctx.id, entry.ino);
        if (!same.ok()) return same.status();
        if (same->has_value() && **same == row->id) {
          unclaimed.erase(row_it);  // the same directory; its own changes come by inode
          continue;
        }
        // Another directory under the same name, or a subvolume root: stat decides.
        absl::StatusOr<VolumeStat> st = (*dir)->StatEntry(entry.name);
        if (!st.ok()) {
          if (!absl::IsNotFound(st.status())) {
            AddError(st.status());
            unclaimed.erase(row_it);
          }
          continue;
        }
        if (IsBoundary(ctx, *st)) {
          if (indexed_subvolume_paths_.contains(JoinVolumePath(*path, entry.name))) {
            unclaimed.erase(row_it);
          }
          continue;
        }
        RETURN_IF_ERROR(RemoveDirRow(row->id));
        unclaimed.erase(row_it);
      } else if (row != nullptr) {  // was a file
        RETURN_IF_ERROR(RemoveFileRow(row->id));
        unclaimed.erase(row_it);
      }
      result.candidates.push_back({entry.name, 0});
    }
    // Symlinks and special files are not indexed; a row under their name goes below.
  }
  for (const auto& [name, row] : unclaimed) {
    RETURN_IF_ERROR(RemoveEntryRow(row));
  }
  if (!result.candidates.empty()) out->push_back(std::move(result));
  return absl::OkStatus();
}

absl::Status ScanPass::ApplyCandidates(const SubvolumeContext& ctx,
                                       const RelistedDir& relisted) {
  // The directory may have left the index with an ancestor moved in this pass; then the
  // walk of its new place covers it.
  absl::StatusOr<std::optional<int64_t>> still = index_->FindDirByInode(ctx.id, relisted.ino);
  if (!still.ok()) return still.status();
  if (!still->has_value() || **still != relisted.dir_id) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<VolumeDir>> dir = fs_->OpenDir(relisted.path);
  if (!dir.ok()) {
    if (!absl::IsNotFound(dir.status())) AddError(dir.status());
    return absl::OkStatus();
  }
  if ((*dir)->self().ino != relisted.ino || (*dir)->self().dev != ctx.dev) {
    return absl::OkStatus();
  }
  std::vector<PendingDir> walk;
  for (const Candidate& candidate : relisted.candidates) {
    absl::StatusOr<VolumeStat> st = (*dir)->StatEntry(candidate.name);
    if (!st.ok()) {
      if (absl::IsNotFound(st.status())) {
        if (candidate.file_id != 0) RETURN_IF_ERROR(RemoveFileRow(candidate.file_id));
      } else {
        AddError(st.status());
      }
      continue;
    }
    const std::string child_path = JoinVolumePath(relisted.path, candidate.name);
    if (st->type == EntryType::kRegular) {
      ++report_->files_seen;
      if (st->size < config_.min_file_size) {
        if (candidate.file_id != 0) RETURN_IF_ERROR(RemoveFileRow(candidate.file_id));
        continue;
      }
      RETURN_IF_ERROR(ObserveIfChanged(ctx, relisted.dir_id, candidate.name, *st,
                                            candidate.file_id, nullptr));
    } else if (st->type == EntryType::kDirectory && !IsBoundary(ctx, *st)) {
      if (candidate.file_id != 0) RETURN_IF_ERROR(RemoveFileRow(candidate.file_id));
      absl::StatusOr<int64_t> id = AddDir(ctx, child_path, st->ino);
      if (!id.ok()) return id.status();
      walk.push_back(PendingDir{*id, child_path, st->ino});
    } else if (candidate.file_id != 0) {
      RETURN_IF_ERROR(RemoveFileRow(candidate.file_id));  // now a symlink, ...
    }
  }
  for (PendingDir& pending : walk) {
    RETURN_IF_ERROR(WalkFrom(ctx, std::move(pending)));
  }
  return absl::OkStatus();
}

absl::Status ScanPass::RestatChangedFile(const SubvolumeContext& ctx, uint64_t ino,
                                         const absl::flat_hash_set<int64_t>& relisted) {
  absl::StatusOr<std::vector<FileRecord>> rows = index_->FindFilesByInode(ctx.id, ino);
  if (!rows.ok()) return rows.status();
  const InodeChange* const change = ctx.FindChanged(ino);
  for (const FileRecord& row : *rows) {
    if (relisted.contains(row.dir_id)) continue;  // handled by name there
    if (IsExcluded(row.path, EntryType::kRegular)) {
      RETURN_IF_ERROR(RemoveFileRow(row.id));
      continue;
    }
    if (change != nullptr &&
        SameContent(row, change->size, change->mtime_ns, change->ctime_ns)) {
      // Only the inode's extents or atime changed (every file btrdupd itself deduped):
      // the stat below would find it unchanged. Its directory did not change, so it is
      // still where the row says.
      ++report_->files_seen;
      continue;
    }
    absl::StatusOr<VolumeStat> st = fs_->Stat(row.path);
    if (!st.ok()) {
      if (absl::IsNotFound(st.status())) {
        RETURN_IF_ERROR(RemoveFileRow(row.id));
      } else {
        AddError(st.status());
      }
      continue;
    }
    ++report_->files_seen;
    if (st->type != EntryType::kRegular || st->ino != ino ||
        st->size < config_.min_file_size) {
      // Not this file any more (its directory changed after the search began: the next
      // pass lists it), or below the size floor now.
      RETURN_IF_ERROR(RemoveFileRow(row.id));
      continue;
    }
    const size_t slash = row.path.rfind('/');
    const absl::string_view name =
        slash == std::string::npos ? absl::string_view(row.path)
                                   : absl::string_view(row.path).substr(slash + 1);
    RETURN_IF_ERROR(ObserveIfChanged(ctx, row.dir_id, name, *st, row.id, &row));
  }
  return absl::OkStatus();
}

}  // namespace btrdupd
