// The full walk of a subvolume: every directory listed and reconciled with the index.

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/scan_pass.h"

namespace btrdupd {

absl::Status ScanPass::WalkSubvolume(const VolumeSubvolume& sub, const VolumeDir& root) {
  SubvolumeContext ctx;
  ctx.id = sub.id;
  ctx.path = sub.path;
  ctx.dev = root.self().dev;
  ctx.generation = sub.generation;
  absl::StatusOr<int64_t> root_id = index_->EnsureDir(sub.path, sub.id, root.self().ino);
  if (!root_id.ok()) return root_id.status();
  RETURN_IF_ERROR(Wrote());
  ++report_->subvolumes_walked;
  return WalkFrom(ctx, PendingDir{*root_id, sub.path, root.self().ino});
}

absl::Status ScanPass::WalkFrom(const SubvolumeContext& ctx, PendingDir start) {
  std::vector<PendingDir> queue;
  queue.push_back(std::move(start));
  while (!queue.empty()) {
    RETURN_IF_ERROR(CheckStop());
    PendingDir at = std::move(queue.back());
    queue.pop_back();
    absl::StatusOr<std::unique_ptr<VolumeDir>> dir = fs_->OpenDir(at.path);
    if (!dir.ok()) {
      if (absl::IsNotFound(dir.status())) {
        // Gone since its parent was listed: it leaves the index with its contents.
        RETURN_IF_ERROR(RemoveDirRow(at.dir_id));
      } else {
        AddError(dir.status());  // keep what the index knows of it
      }
      continue;
    }
    const VolumeStat& self = (*dir)->self();
    if (self.ino != at.ino || self.dev != ctx.dev) {
      // Replaced (or turned into a mount point) since its parent was listed; the next
      // pass sees its parent changed and brings the index up to date.
      AddError(absl::AbortedError(
          absl::StrCat(fs_->root(), "/", at.path, ": changed while being scanned")));
      continue;
    }
    RETURN_IF_ERROR(ReconcileDir(ctx, at, **dir, &queue));
    ReportProgress(ctx);
  }
  return absl::OkStatus();
}

absl::StatusOr<VolumeStat> ScanPass::StatOf(
    VolumeDir& dir, const VolumeDirEntry& entry,
    const absl::flat_hash_map<uint64_t, VolumeStat>& bulk) const {
  // The inode item of a file written lately may not hold all of it yet (a write not
  // written back: see VolumeDir::StatRegularFiles) while its times already moved; such a
  // file is statted, or its row would get a size it does not have. Written back within
  // the kernel's dirty expiry (30 s by default); this leaves ample room.
  constexpr absl::Duration kWritebackLag = absl::Minutes(5);
  if (entry.type == EntryType::kRegular) {
    auto it = bulk.find(entry.ino);
    // An item saying "too small" may be one a write has not reached yet: no row would
    // be made, and nothing would bring the file back, so only lstat may say so.
    if (it != bulk.end() && it->second.size >= config_.min_file_size &&
        absl::FromUnixNanos(it->second.ctime_ns) < clock_->Now() - kWritebackLag) {
      return it->second;
    }
  }
  return dir.StatEntry(entry.name);
}

absl::Status ScanPass::ReconcileDir(const SubvolumeContext& ctx, const PendingDir& at,
                                    VolumeDir& dir, std::vector<PendingDir>* queue) {
  absl::StatusOr<std::vector<VolumeDirEntry>> entries = dir.ReadEntries();
  if (!entries.ok()) {
    AddError(entries.status());
    return absl::OkStatus();
  }
  // The files' inode items in one read where the filesystem can, instead of an lstat
  // each; what it leaves out is statted below. (Failing, it only costs the lstats.)
  absl::flat_hash_map<uint64_t, VolumeStat> bulk =
      dir.StatRegularFiles(*entries).value_or(absl::flat_hash_map<uint64_t, VolumeStat>());
  absl::StatusOr<std::vector<DirEntryRecord>> rows = index_->ListDir(at.dir_id);
  if (!rows.ok()) return rows.status();
  ++report_->dirs_listed;
  // Rows not claimed by an entry below are gone from disk and leave the index.
  absl::flat_hash_map<std::string, DirEntryRecord> unclaimed;
  unclaimed.reserve(rows->size());
  for (DirEntryRecord& row : *rows) unclaimed.emplace(row.name, std::move(row));

  for (const VolumeDirEntry& entry : *entries) {
    if (IsStateDir(ctx, at.path, entry.name)) continue;
    if (entry.type != EntryType::kRegular && entry.type != EntryType::kDirectory &&
        entry.type != EntryType::kUnknown) {
      continue;  // symlink, device, socket, fifo: never indexed
    }
    absl::StatusOr<VolumeStat> st = StatOf(dir, entry, bulk);
    if (!st.ok()) {
      if (!absl::IsNotFound(st.status())) {
        AddError(st.status());
        unclaimed.erase(entry.name);  // unreadable now: keep what the index knows
      }
      continue;  // vanished since the listing: its row (if any) goes
    }
    const std::string child_path = JoinVolumePath(at.path, entry.name);
    if (IsExcluded(child_path, st->type)) continue;  // its row (if any) goes
    auto row_it = unclaimed.find(entry.name);
    const DirEntryRecord* row = row_it == unclaimed.end() ? nullptr : &row_it->second;

    if (st->type == EntryType::kRegular) {
      ++report_->files_seen;
      if (st->size < config_.min_file_size) continue;  // its row (if any) goes
      int64_t file_id = 0;
      if (row != nullptr) {
        if (row->is_dir) {
          RETURN_IF_ERROR(RemoveDirRow(row->id));
        } else {
          file_id = row->id;
        }
        unclaimed.erase(row_it);
      }
      RETURN_IF_ERROR(ObserveIfChanged(ctx, at.dir_id, entry.name, *st, file_id, nullptr));
    } else if (st->type == EntryType::kDirectory) {
      if (IsBoundary(ctx, *st)) {
        // A nested subvolume (walked as its own unit) keeps its rows; anything else
        // mounted here (or an excluded snapshot) is not indexed.
        if (row != nullptr && row->is_dir && indexed_subvolume_paths_.contains(child_path)) {
          unclaimed.erase(row_it);
        }
        continue;
      }
      if (row != nullptr) {
        if (row->is_dir) {
          absl::StatusOr<std::optional<int64_t>> same = index_->FindDirByInode(ctx.id, st->ino);
          if (!same.ok()) return same.status();
          if (same->has_value() && **same == row->id) {
            queue->push_back(PendingDir{row->id, child_path, st->ino});
            unclaimed.erase(row_it);
            continue;
          }
          RETURN_IF_ERROR(RemoveDirRow(row->id));  // replaced by another directory
        } else {
          RETURN_IF_ERROR(RemoveFileRow(row->id));
        }
        unclaimed.erase(row_it);
      }
      absl::StatusOr<int64_t> id = AddDir(ctx, child_path, st->ino);
      if (!id.ok()) return id.status();
      queue->push_back(PendingDir{*id, child_path, st->ino});
    }
  }
  for (const auto& [name, row] : unclaimed) {
    RETURN_IF_ERROR(RemoveEntryRow(row));
  }
  return absl::OkStatus();
}

}  // namespace btrdupd
