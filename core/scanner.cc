#include "core/scanner.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/exclude.h"
#include "core/scan_pass.h"
#include "core/scan_policy.h"

namespace btrdupd {
namespace {

// The state directory itself, or anything below it.
bool UnderStateDir(absl::string_view path) {
  return path == kStateDirName || absl::StartsWith(path, absl::StrCat(kStateDirName, "/"));
}

absl::flat_hash_set<uint64_t> ParseIds(const std::optional<std::string>& text) {
  absl::flat_hash_set<uint64_t> ids;
  if (!text.has_value()) return ids;
  for (absl::string_view part : absl::StrSplit(*text, ',', absl::SkipEmpty())) {
    uint64_t id = 0;
    if (absl::SimpleAtoi(part, &id)) ids.insert(id);
  }
  return ids;
}

std::string FormatIds(const absl::flat_hash_set<uint64_t>& ids) {
  std::vector<uint64_t> sorted(ids.begin(), ids.end());
  std::sort(sorted.begin(), sorted.end());
  return absl::StrJoin(sorted, ",");
}

// A read-only subvolume recorded as it is now, whose generation did not move since the
// pass that recorded it, and linked as before (to `source`, or to nothing): its tree has
// not changed. The root item's generation is its tree root's, which any change moves
// (committed before the read-only flag can be set again), and the last pass covered
// everything up to it; a change still running shows in a later generation, which the
// next pass searches from last_generation on.
bool Unchanged(const VolumeSubvolume& sub, const SubvolumeRecord& record,
               const VolumeSubvolume* source) {
  return sub.read_only && record.read_only && record.last_generation != 0 &&
         sub.generation == record.last_generation && sub.path == record.path &&
         sub.uuid == record.uuid && sub.parent_uuid == record.parent_uuid &&
         sub.received_uuid == record.received_uuid &&
         record.source_id == (source == nullptr ? 0 : source->id);
}

}  // namespace

const char* ScanKindName(ScanKind kind) {
  return kind == ScanKind::kFull ? "full" : "incremental";
}

Scanner::Scanner(VolumeFs* fs, VolumeIndex* index, const VolumeConfig& config, Clock* clock,
                 ScanOptions options)
    : fs_(fs), index_(index), config_(config), clock_(clock), options_(std::move(options)) {}

absl::StatusOr<ScanReport> Scanner::Run(ScanMode mode) {
  const absl::Time start = clock_->Now();
  ScanReport report;
  absl::StatusOr<FullScanState> state = LoadFullScanState(index_);
  if (!state.ok()) return state.status();
  const std::string excludes = absl::StrJoin(config_.exclude, "\n");
  absl::StatusOr<std::optional<std::string>> indexed_excludes = index_->GetMeta(kMetaExclude);
  if (!indexed_excludes.ok()) return indexed_excludes.status();
  const bool excludes_changed = indexed_excludes->value_or("") != excludes;
  const bool full =
      mode == ScanMode::kForceFull || excludes_changed ||
      NextFullScanTime(*state, config_, start, options_.time_zone) <= start ||
      (options_.catch_up_missed_full_scan &&
       MissedFullScanTime(*state, config_, start, options_.time_zone) <= start);
  const ExcludeList exclude_list = ExcludeList::Parse(config_.exclude).value_or(ExcludeList());
  report.kind = full ? ScanKind::kFull : ScanKind::kIncremental;

  absl::StatusOr<std::vector<VolumeSubvolume>> listed = fs_->ListSubvolumes();
  if (!listed.ok()) return listed.status();
  std::vector<VolumeSubvolume> subvolumes;
  absl::flat_hash_set<std::string> indexed_paths;
  for (VolumeSubvolume& sub : *listed) {
    if (UnderStateDir(sub.path)) continue;
    // The volume root is indexed whatever it is: the user named it.
    if (!config_.dedup_snapshots && !sub.parent_uuid.empty() && !sub.path.empty()) continue;
    if (!sub.path.empty() && exclude_list.ExcludesDir(sub.path)) continue;
    indexed_paths.insert(sub.path);
    subvolumes.push_back(std::move(sub));
  }
  // Parents before the subvolumes nested in them; snapshots after their sources.
  std::sort(subvolumes.begin(), subvolumes.end(),
            [](const VolumeSubvolume& a, const VolumeSubvolume& b) { return a.path < b.path; });
  absl::StatusOr<std::vector<SubvolumeRecord>> records = index_->ListSubvolumes();
  if (!records.ok()) return records.status();
  absl::flat_hash_map<uint64_t, SubvolumeRecord> known;
  for (SubvolumeRecord& record : *records) known.emplace(record.id, std::move(record));

  ScanPass pass(fs_, index_, config_, clock_, options_, &report);
  pass.set_indexed_subvolume_paths(std::move(indexed_paths));

  // Everything below runs in batches; on any early return the work done is committed
  // (it is consistent: see core/scanner.h) before the error is passed on.
  absl::Status status = pass.Begin();
  if (!status.ok()) return status;
  auto body = [&]() -> absl::Status {
    absl::flat_hash_set<uint64_t> done;
    if (full) {
      if (state->pending) {
        absl::StatusOr<std::optional<std::string>> text = index_->GetMeta(kMetaFullScanDone);
        if (!text.ok()) return text.status();
        done = ParseIds(*text);
      } else {
        RETURN_IF_ERROR(index_->SetMeta(kMetaFullScanPending, "1"));
        RETURN_IF_ERROR(index_->SetMeta(kMetaFullScanDone, ""));
      }
      RETURN_IF_ERROR(pass.Commit());
    }

    // Subvolumes deleted (or no longer indexed, or moved: then walked again below).
    absl::flat_hash_map<uint64_t, const VolumeSubvolume*> by_id;
    for (const VolumeSubvolume& sub : subvolumes) by_id.emplace(sub.id, &sub);
    for (auto it = known.begin(); it != known.end();) {
      auto found = by_id.find(it->first);
      if (found == by_id.end() || found->second->path != it->second.path) {
        RETURN_IF_ERROR(index_->RemoveSubvolume(it->first));
        if (found == by_id.end()) ++report.subvolumes_removed;
        known.erase(it++);
      } else {
        ++it;
      }
    }
    RETURN_IF_ERROR(pass.Commit());

    // Snapshots after their sources (by uuid, or by the link the index keeps when the
    // snapshot in between went).
    absl::flat_hash_map<std::string, const VolumeSubvolume*> by_uuid;
    absl::flat_hash_map<uint64_t, const VolumeSubvolume*> by_id_now;
    auto index_maps = [&]() {
      by_uuid.clear();
      by_id_now.clear();
      for (const VolumeSubvolume& sub : subvolumes) {
        if (!sub.uuid.empty()) by_uuid.emplace(sub.uuid, &sub);
        by_id_now.emplace(sub.id, &sub);
      }
    };
    auto SourceOf = [&](const VolumeSubvolume& sub) -> const VolumeSubvolume* {
      if (sub.path.empty() || sub.created_generation == 0) return nullptr;
      if (!sub.parent_uuid.empty()) {
        if (auto found = by_uuid.find(sub.parent_uuid); found != by_uuid.end()) {
          return found->second;
        }
      }
      auto record = known.find(sub.id);
      if (record == known.end() || record->second.source_id == 0) return nullptr;
      auto linked = by_id_now.find(record->second.source_id);
      return linked == by_id_now.end() ? nullptr : linked->second;
    };
    {
      absl::StatusOr<std::vector<SubvolumeRecord>> now = index_->ListSubvolumes();
      if (!now.ok()) return now.status();
      known.clear();
      for (SubvolumeRecord& record : *now) known.emplace(record.id, std::move(record));
    }
    index_maps();
    absl::flat_hash_map<uint64_t, int> depth;
    for (const VolumeSubvolume& sub : subvolumes) {
      int d = 0;
      const VolumeSubvolume* at = &sub;
      while (d <= static_cast<int>(subvolumes.size())) {
        const VolumeSubvolume* parent = SourceOf(*at);
        if (parent == nullptr) break;
        at = parent;
        ++d;
      }
      depth[sub.id] = d;
    }
    std::stable_sort(subvolumes.begin(), subvolumes.end(),
                     [&](const VolumeSubvolume& a, const VolumeSubvolume& b) {
                       return depth[a.id] < depth[b.id];
                     });
    index_maps();

    // Generation recorded this pass per subvolume done.
    absl::flat_hash_map<uint64_t, uint64_t> ready;
    for (const VolumeSubvolume& sub : subvolumes) {
      auto record = known.find(sub.id);
      const bool is_new = record == known.end();
      if (is_new) ++report.subvolumes_added;
      const VolumeSubvolume* source = SourceOf(sub);
      if (!is_new && Unchanged(sub, record->second, source) &&
          !(full && !done.contains(sub.id)) &&
          (source == nullptr || ready.contains(source->id))) {
        // A read-only subvolume whose tree did not move since the last pass: nothing to
        // search, open or write (a backup host keeps hundreds of these).
        ready[sub.id] = sub.generation;
        ++report.subvolumes_unchanged;
        continue;
      }
      SubvolumeRecord row;
      row.id = sub.id;
      row.path = sub.path;
      row.uuid = sub.uuid;
      row.parent_uuid = sub.parent_uuid;
      row.received_uuid = sub.received_uuid;
      row.read_only = sub.read_only;
      RETURN_IF_ERROR(index_->UpsertSubvolume(row));

      absl::StatusOr<std::unique_ptr<VolumeDir>> root = fs_->OpenDir(sub.path);
      if (!root.ok()) {
        pass.AddError(root.status());
        continue;
      }
      absl::StatusOr<std::optional<int64_t>> root_row =
          index_->FindDirByInode(sub.id, (*root)->self().ino);
      if (!root_row.ok()) return root_row.status();
      const uint64_t last = is_new ? 0 : record->second.last_generation;
      // A snapshot of a subvolume done in this pass, taken before that subvolume's
      // generation, is linked to it (core/index.h, "Snapshots").
      if (source != nullptr) {
        auto source_gen = ready.find(source->id);
        if (source_gen == ready.end()) continue;  // its source failed in this pass

      }
      const uint64_t linked_to = is_new ? 0 : record->second.source_id;
      const bool walk = (full && !done.contains(sub.id)) || last == 0 ||
                        !root_row->has_value() || sub.generation < last;
      if (source != nullptr) {
        if (linked_to == source->id && !walk) {
          RETURN_IF_ERROR(pass.CompareSnapshot(sub, *source, **root, std::nullopt, last));
        } else {
          if (!is_new) {
            // Rows of an earlier link or of a whole walk go; the comparison starts over.
            RETURN_IF_ERROR(index_->RemoveSubvolume(sub.id));
            RETURN_IF_ERROR(index_->UpsertSubvolume(row));
          }
          RETURN_IF_ERROR(pass.CompareSnapshot(sub, *source, **root,
                                                    sub.created_generation,
                                                    sub.created_generation));
          // The source's rows were read after the snapshot existed: rows up to this
          // generation that the comparison did not mark are the snapshot's files too.
          RETURN_IF_ERROR(index_->SetSnapshotSource(
              sub.id, source->id, std::max(ready[source->id], sub.created_generation)));
          ++report.subvolumes_walked;
        }
      } else if (walk || linked_to != 0) {
        if (linked_to != 0) RETURN_IF_ERROR(index_->SetSnapshotSource(sub.id, 0, 0));
        RETURN_IF_ERROR(pass.WalkSubvolume(sub, **root));
      } else {
        // Searched even when the committed generation has not moved: the search also
        // sees the running transaction, and finding nothing costs next to nothing.
        if (sub.generation > last && sub.generation - last > config_.max_generation_gap &&
            !full) {
          if (!state->wanted) {
            RETURN_IF_ERROR(index_->SetMeta(kMetaFullScanWantedSince,
                                            absl::StrCat(absl::ToUnixSeconds(start))));
            state->wanted = true;
          }
          RETURN_IF_ERROR(index_->SetMeta(
              kMetaFullScanWanted,
              absl::StrCat("subvolume ", sub.id, " '", sub.path, "' generation ", last,
                           " -> ", sub.generation)));
        }
        RETURN_IF_ERROR(pass.UpdateSubvolume(sub, **root, last));
      }
      RETURN_IF_ERROR(index_->SetSubvolumeScanned(sub.id, sub.generation, clock_->Now()));
      ready[sub.id] = sub.generation;
      if (full) {
        done.insert(sub.id);
        RETURN_IF_ERROR(index_->SetMeta(kMetaFullScanDone, FormatIds(done)));
      }
      RETURN_IF_ERROR(pass.Commit());
    }

    const std::string now_text = absl::StrCat(absl::ToUnixSeconds(clock_->Now()));
    if (full) {
      RETURN_IF_ERROR(index_->SetMeta(kMetaLastFullScan, now_text));
      RETURN_IF_ERROR(index_->SetMeta(kMetaFullScanPending, "0"));
      RETURN_IF_ERROR(index_->SetMeta(kMetaFullScanDone, ""));
      RETURN_IF_ERROR(index_->SetMeta(kMetaFullScanWanted, ""));
      RETURN_IF_ERROR(index_->SetMeta(kMetaExclude, excludes));
    } else {
      RETURN_IF_ERROR(index_->SetMeta(kMetaLastIncremental, now_text));
    }
    return absl::OkStatus();
  };
  status = body();
  absl::Status commit = index_->CommitBatch();
  if (!status.ok()) return status;
  if (!commit.ok()) return commit;

  absl::StatusOr<FullScanState> after = LoadFullScanState(index_);
  if (!after.ok()) return after.status();
  const absl::Time end = clock_->Now();
  report.next_full_scan = NextFullScanTime(*after, config_, end, options_.time_zone);
  report.duration = end - start;
  return report;
}

}  // namespace btrdupd
