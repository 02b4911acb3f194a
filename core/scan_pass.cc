#include "core/scan_pass.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace btrdupd {

ScanPass::ScanPass(VolumeFs* fs, VolumeIndex* index, const VolumeConfig& config,
                   Clock* clock, const ScanOptions& options, ScanReport* report)
    : fs_(fs),
      index_(index),
      config_(config),
      policy_(ToStabilityPolicy(config)),
      clock_(clock),
      options_(options),
      report_(report),
      excludes_(ExcludeList::Parse(config.exclude).value_or(ExcludeList())) {}

bool ScanPass::IsExcluded(absl::string_view path, EntryType type) const {
  if (excludes_.empty()) return false;
  if (type == EntryType::kDirectory) return excludes_.ExcludesDir(path);
  return excludes_.ExcludesFile(path);
}

absl::Status ScanPass::Begin() {
  rows_in_batch_ = 0;
  return index_->BeginBatch();
}

absl::Status ScanPass::Commit() {
  RETURN_IF_ERROR(index_->CommitBatch());
  return Begin();
}

absl::Status ScanPass::Wrote() {
  if (++rows_in_batch_ >= options_.batch_rows) return Commit();
  return absl::OkStatus();
}

absl::Status ScanPass::CheckStop() {
  if (options_.should_stop && options_.should_stop()) {
    return absl::CancelledError(absl::StrCat("scan of ", fs_->root(), " stopped"));
  }
  return absl::OkStatus();
}

void ScanPass::AddError(const absl::Status& status) {
  ++report_->errors;
  if (report_->first_errors.size() < ScanReport::kMaxReportedErrors) {
    report_->first_errors.push_back(status.ToString());
  }
}

void ScanPass::ReportProgress(const SubvolumeContext& ctx) {
  if (!options_.progress) return;
  ScanProgress progress;
  progress.kind = report_->kind;
  progress.subvolume = ctx.path;
  progress.dirs_listed = report_->dirs_listed;
  progress.files_seen = report_->files_seen;
  options_.progress(progress);
}

bool ScanPass::IsStateDir(const SubvolumeContext& ctx, absl::string_view dir_path,
                          absl::string_view name) const {
  return ctx.path.empty() && dir_path.empty() && name == kStateDirName;
}

absl::Status ScanPass::ObserveIfChanged(const SubvolumeContext& ctx, int64_t dir_id,
                                        absl::string_view name, const VolumeStat& st,
                                        int64_t file_id, const FileRecord* known) {
  std::optional<FileRecord> fetched;
  if (known == nullptr && file_id != 0) {
    absl::StatusOr<std::optional<FileRecord>> row = index_->GetFile(file_id);
    if (!row.ok()) return row.status();
    fetched = std::move(*row);
    if (fetched.has_value()) known = &*fetched;
  }
  if (known != nullptr && known->ino == st.ino &&
      SameContent(*known, st.size, st.mtime_ns, st.ctime_ns)) {
    return absl::OkStatus();  // unchanged, or a metadata-only change: keep its state
  }
  FileObservation seen;
  seen.subvol_id = ctx.id;
  seen.ino = st.ino;
  seen.size = st.size;
  seen.mtime_ns = st.mtime_ns;
  seen.ctime_ns = st.ctime_ns;
  seen.generation = ctx.generation;
  const int64_t changed_ns = std::max(st.mtime_ns, st.ctime_ns);
  if (st.ctime_ns != 0) {
    seen.last_change = clock_->FromWallTime(absl::FromUnixNanos(changed_ns));
  }
  if (const InodeChange* change = ctx.FindChanged(st.ino); change != nullptr) {
    seen.generation = change->transid;
  }
  absl::StatusOr<int64_t> id = index_->ObserveFile(dir_id, name, seen, clock_->Now(), policy_);
  if (!id.ok()) return id.status();
  if (known != nullptr) {
    ++report_->files_changed;
  } else {
    ++report_->files_added;
  }
  return Wrote();
}

absl::StatusOr<int64_t> ScanPass::AddDir(const SubvolumeContext& ctx, const std::string& path,
                                         uint64_t ino) {
  // A row for this inode elsewhere is a directory moved here whose old place was not
  // reconciled yet: that place no longer holds it.
  absl::StatusOr<std::optional<int64_t>> old = index_->FindDirByInode(ctx.id, ino);
  if (!old.ok()) return old.status();
  if (old->has_value()) RETURN_IF_ERROR(RemoveDirRow(**old));
  absl::StatusOr<int64_t> id = index_->EnsureDir(path, ctx.id, ino);
  if (!id.ok()) return id.status();
  RETURN_IF_ERROR(Wrote());
  return *id;
}

absl::Status ScanPass::RemoveFileRow(int64_t file_id) {
  RETURN_IF_ERROR(index_->RemoveFile(file_id));
  ++report_->files_removed;
  return Wrote();
}

absl::Status ScanPass::RemoveDirRow(int64_t dir_id) {
  RETURN_IF_ERROR(index_->RemoveDir(dir_id));
  ++report_->dirs_removed;
  return Wrote();
}

absl::Status ScanPass::RemoveEntryRow(const DirEntryRecord& row) {
  return row.is_dir ? RemoveDirRow(row.id) : RemoveFileRow(row.id);
}

}  // namespace btrdupd
