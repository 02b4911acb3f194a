#include "daemon/explain.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/config.h"
#include "core/exclude.h"
#include "core/index.h"
#include "core/status_macros.h"
#include "daemon/explain_lookup.h"
#include "daemon/log.h"
#include "daemon/one_shot.h"
#include "daemon/progress.h"
#include "daemon/status_json.h"
#include "daemon/status_report.h"
#include "daemon/volume_open.h"
#include "ioctl/errno_status.h"

ABSL_FLAG(bool, explain, false,
          "Say for each PATH (a file on a volume btrdupd has run on) why it is or is not\n"
          "deduped: tracked or not and why, its size group, hash state, stability wait\n"
          "and dedupe state (with -v: the other files of its identical group). Reads the\n"
          "volume's database only; changes nothing. With --json: one object per path.");
ABSL_DECLARE_FLAG(bool, json);

namespace btrdupd {
namespace {

struct Explanation {
  std::string path;     // canonical
  std::string volume;   // mount path of the managed volume
  std::string relative; // path relative to the volume root
  bool tracked = false;
  std::string untracked_reason;  // kind: not_regular, other_mount, too_small, excluded, not_scanned
  std::string untracked_text;
  uint64_t size = 0;
  std::optional<FileRecord> record;
  int64_t size_group = 0;
  std::vector<std::string> identical;  // the other members with its full hash
  std::string reference_path;          // kDeduped, kAlreadyShared: what it shares with
  // A snapshot file with no row of its own: the path of the source row that stands for
  // it (`record` is that row). Empty otherwise.
  std::string copy_of;
  bool changed = false;  // not what the last pass recorded (SameContent, core/index_records.h)
  absl::Time now;
};

const char* HashStateName(HashState s) {
  switch (s) {
    case HashState::kNone: return "none";
    case HashState::kPrefix: return "prefix";
    case HashState::kFull: return "full";
  }
  return "?";
}

const char* DedupeStateName(DedupeState s) {
  switch (s) {
    case DedupeState::kPending: return "pending";
    case DedupeState::kReference: return "reference";
    case DedupeState::kDeduped: return "deduped";
    case DedupeState::kAlreadyShared: return "already_shared";
    case DedupeState::kSkipped: return "skipped";
    case DedupeState::kUnique: return "unique";
  }
  return "?";
}

std::string When(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", t, absl::LocalTimeZone());
}

bool Known(absl::Time t) { return t != absl::InfinitePast(); }

// The mount id of `path` (not following a final symlink), or nullopt when unknown.
std::optional<uint64_t> MountId(const std::string& path) {
  struct {
    struct file_handle handle;
    unsigned char bytes[MAX_HANDLE_SZ];
  } buffer;
  buffer.handle.handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, path.c_str(), &buffer.handle, &mount_id, 0) == 0) {
    return static_cast<uint64_t>(mount_id);
  }
  return std::nullopt;
}

// The nearest directory at or above `dir` with a btrdupd database.
absl::StatusOr<VolumeLocation> FindManagedVolume(const std::string& path,
                                                 absl::string_view db_dir) {
  std::string dir = path;
  while (true) {
    const size_t slash = dir.rfind('/');
    if (slash == std::string::npos) break;
    dir = slash == 0 ? "/" : dir.substr(0, slash);
    absl::StatusOr<VolumeLocation> location = ResolveVolume(dir, db_dir);
    if (location.ok()) {
      struct stat st;
      if (stat(location->db_path.c_str(), &st) == 0) return location;
      if (errno != ENOENT) {
        return ErrnoToStatusWithMessage(
            errno, absl::StrCat("cannot read the database ", location->db_path, ": ",
                                std::strerror(errno),
                                errno == EACCES ? " (run btrdupd --explain as root)" : ""));
      }
    }
    if (dir == "/") break;
  }
  return absl::NotFoundError(absl::StrCat(
      "on no volume btrdupd manages (no database found above it; "
      "run 'btrdupd VOLUME' on its volume first",
      db_dir.empty() ? "" : absl::StrCat(" with --db-dir=", db_dir), ")"));
}

absl::StatusOr<Explanation> Explain(const std::string& given, absl::string_view db_dir,
                                    absl::Time now) {
  char resolved[PATH_MAX];
  if (realpath(given.c_str(), resolved) == nullptr) {
    return ErrnoToStatusWithMessage(
        errno, absl::StrCat("cannot find this path: ", std::strerror(errno)));
  }
  Explanation out;
  out.now = now;
  out.path = resolved;
  ASSIGN_OR_RETURN(VolumeLocation location, FindManagedVolume(out.path, db_dir));
  out.volume = location.path;
  out.relative = out.path.substr(location.path == "/" ? 1 : location.path.size() + 1);
  // Read-only: explaining never creates, migrates or repairs the database. Through its
  // directory: no path is too long for SQLite (daemon/volume_open.h).
  ASSIGN_OR_RETURN(UniqueFd database_dir, OpenDatabaseDirectory(location));
  ASSIGN_OR_RETURN(std::unique_ptr<VolumeIndex> index,
                   VolumeIndex::OpenReadOnly(DatabaseBeneath(database_dir, location.db_file),
                                             location.path));

  const size_t slash = out.relative.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : out.relative.substr(0, slash);
  ASSIGN_OR_RETURN(out.record, FindFileByPath(*index, out.relative));
  struct stat st;
  if (lstat(out.path.c_str(), &st) != 0) {
    return ErrnoToStatusWithMessage(
        errno, absl::StrCat("cannot stat ", PrintablePath(out.path), ": ", std::strerror(errno)));
  }
  out.size = static_cast<uint64_t>(st.st_size);
  if (!out.record.has_value() && S_ISREG(st.st_mode)) {
    // A snapshot's unchanged file has no row: its source's row stands for it (the same
    // inode number, the same extents).
    ASSIGN_OR_RETURN(std::optional<FileRecord> source, FindImpliedSource(*index, out.relative));
    if (source.has_value() && source->ino == static_cast<uint64_t>(st.st_ino)) {
      out.copy_of = source->path;
      out.record = std::move(source);
    }
  }
  if (out.record.has_value()) {
    out.tracked = true;
    const FileRecord& r = *out.record;
    const int64_t mtime_ns =
        static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    const int64_t ctime_ns =
        static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
    out.changed = !SameContent(r, out.size, mtime_ns, ctime_ns);
    ASSIGN_OR_RETURN(std::vector<FileRecord> same_size, index->FilesOfSize(r.size));
    out.size_group = static_cast<int64_t>(same_size.size());
    if (r.hash_state == HashState::kFull) {
      for (const FileRecord& other : same_size) {
        if (other.id != r.id && other.hash_state == HashState::kFull && other.hash == r.hash) {
          out.identical.push_back(other.path);
        }
      }
    }
    if (r.reference_id != 0) {
      ASSIGN_OR_RETURN(std::optional<FileRecord> ref, index->GetFile(r.reference_id));
      if (ref.has_value()) out.reference_path = ref->path;
    }
    return out;
  }
  const std::optional<uint64_t> mount = MountId(out.path);
  const std::optional<uint64_t> volume_mount = MountId(location.path);
  if (!S_ISREG(st.st_mode)) {
    out.untracked_reason = "not_regular";
    out.untracked_text = "it is not a regular file (btrdupd dedupes regular files only)";
  } else if (mount.has_value() && volume_mount.has_value() && *mount != *volume_mount) {
    out.untracked_reason = "other_mount";
    out.untracked_text = "it is on another mount below the volume, which btrdupd does not enter";
  } else {
    absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(location.path);
    const VolumeConfig settings = config.ok() ? *config : VolumeConfig{};
    absl::StatusOr<ExcludeList> excludes = ExcludeList::Parse(settings.exclude);
    bool excluded = false;
    if (excludes.ok()) {
      excluded = excludes->ExcludesFile(out.relative);
      std::string parent = dir;
      while (!excluded && !parent.empty()) {
        excluded = excludes->ExcludesDir(parent);
        const size_t s = parent.rfind('/');
        parent = s == std::string::npos ? "" : parent.substr(0, s);
      }
    }
    if (out.size < settings.min_file_size) {
      out.untracked_reason = "too_small";
      out.untracked_text = absl::StrCat("it is smaller than min_file_size (", out.size,
                                        " < ", settings.min_file_size, " bytes)");
    } else if (excluded) {
      out.untracked_reason = "excluded";
      out.untracked_text = "it matches an exclude glob of the volume's .btrdupd.conf";
    } else {
      out.untracked_reason = "not_scanned";
      out.untracked_text =
          "it has not been scanned yet (new since the last pass; the next pass adds it)";
    }
  }
  return out;
}

std::string DedupeText(const Explanation& e) {
  const FileRecord& r = *e.record;
  const std::string reference =
      PrintablePath(e.reference_path.empty() ? "(a removed file)" : e.reference_path);
  switch (r.dedupe_state) {
    case DedupeState::kDeduped:
      return absl::StrCat(
          "deduped against ", reference,
          Known(r.shared_at) ? absl::StrCat(" on ", When(r.shared_at))
                             : " (date unknown: recorded by an older btrdupd, which kept no "
                               "date and also counted files found already sharing as deduped)",
          "; it shares its extents");
    case DedupeState::kAlreadyShared:
      return absl::StrCat("already sharing with ", reference, ", found ",
                          Known(r.shared_at) ? When(r.shared_at) : "(date unknown)",
                          " (a reflink, snapshot or other copy; nothing to dedupe)");
    case DedupeState::kReference:
      return absl::StrCat("the reference copy of its group (", e.identical.size(),
                          " other identical file(s) share its extents or will)");
    case DedupeState::kSkipped:
      return absl::StrCat("skipped (", SkipKindName(r.skip_kind), "): ",
                          r.skip_detail.empty() ? std::string(SkipKindDescription(r.skip_kind))
                                                : PrintablePath(r.skip_detail));
    case DedupeState::kUnique:
      return "no partner: no other file of its size has its contents (it differs)";
    case DedupeState::kPending:
      if (e.size_group < 2) return "waiting for a partner: no other file has its size";
      if (r.next_eligible > e.now && r.backoff_level > 0) {
        // ObserveFile and InvalidateFile raise the level: a change seen by a scan, or one
        // found after hashing (the kernel's compare said it differs, or it changed while
        // it was read).
        return absl::StrCat("pending: it changed after it was first seen or after it was "
                            "hashed (", r.backoff_level,
                            " time(s)), so it waits longer before it is hashed again");
      }
      if (r.next_eligible > e.now) return "pending: waits for its stability wait to end";
      return "pending: the next pass compares it with the files of its size";
  }
  return "?";
}

std::string FormatText(const Explanation& e, bool verbose) {
  std::string text = absl::StrCat(PrintablePath(e.path), " (volume ", PrintablePath(e.volume),
                                  ")\n");
  if (!e.tracked) {
    absl::StrAppend(&text, "  not tracked: ", e.untracked_text, ".\n");
    return text;
  }
  const FileRecord& r = *e.record;
  if (!e.copy_of.empty()) {
    absl::StrAppend(&text, "  snapshot copy of ", PrintablePath(e.copy_of),
                    ": unchanged since the snapshot was taken, so it has no row of its own "
                    "and the source's stands for it (same inode, same extents); what "
                    "follows is the source's record.\n");
  }
  absl::StrAppend(&text, "  tracked, ", HumanBytes(r.size), " (", r.size, " bytes); ",
                  e.size_group, " file(s) of that size.\n");
  absl::StrAppend(&text, "  hash: ",
                  r.hash_state == HashState::kNone     ? "none yet"
                  : r.hash_state == HashState::kPrefix ? "its start only (enough to tell it from the others of its size)"
                                                       : "full",
                  r.hash_state == HashState::kFull
                      ? absl::StrCat(", ", e.identical.size(), " identical file(s)")
                      : "",
                  ".\n");
  if (r.next_eligible > e.now) {
    absl::StrAppend(&text, "  stability wait: eligible at ", When(r.next_eligible),
                    ", backoff level ", r.backoff_level, ".\n");
  } else {
    absl::StrAppend(&text, "  stability wait: over (eligible since ", When(r.next_eligible),
                    "), backoff level ", r.backoff_level, ".\n");
  }
  absl::StrAppend(&text, "  dedupe: ", DedupeText(e), ".\n");
  if (e.changed) {
    absl::StrAppend(&text,
                    "  changed since the last pass (size, mtime or ctime differ): what is recorded "
                    "above is stale; the next pass sees the change and the file waits again.\n");
  }
  if (verbose && !e.identical.empty()) {
    absl::StrAppend(&text, "  identical files:\n");
    for (const std::string& p : e.identical) absl::StrAppend(&text, "    ", PrintablePath(p), "\n");
  }
  return text;
}

std::string FormatJson(const Explanation& e) {
  JsonWriter w;
  w.BeginObject();
  w.Key("path").String(e.path);
  w.Key("volume").String(e.volume);
  w.Key("relative_path").String(e.relative);
  w.Key("tracked").Bool(e.tracked);
  if (!e.tracked) {
    w.Key("reason").String(e.untracked_reason);
    w.Key("detail").String(e.untracked_text);
    w.Key("size").Uint(e.size);
    w.EndObject();
    return w.str();
  }
  const FileRecord& r = *e.record;
  w.Key("size").Uint(r.size);
  if (!e.copy_of.empty()) w.Key("copy_of").String(e.copy_of);
  w.Key("size_group").Int(e.size_group);
  w.Key("hash_state").String(HashStateName(r.hash_state));
  w.Key("eligible_at").Time(r.next_eligible);
  w.Key("waiting").Bool(r.next_eligible > e.now);
  w.Key("backoff_level").Int(r.backoff_level);
  w.Key("dedupe_state").String(DedupeStateName(r.dedupe_state));
  if (SharesWithReference(r.dedupe_state)) {
    w.Key("reference").String(e.reference_path);
    w.Key(r.dedupe_state == DedupeState::kDeduped ? "deduped_at" : "found_at")
        .Time(r.shared_at);
  }
  if (r.dedupe_state == DedupeState::kSkipped) {
    w.Key("skip_kind").String(SkipKindName(r.skip_kind));
    w.Key("skip_detail").String(r.skip_detail);
  }
  w.Key("detail").String(DedupeText(e));
  w.Key("changed").Bool(e.changed);
  w.Key("identical").Strings(e.identical);
  w.EndObject();
  return w.str();
}

}  // namespace

bool ExplainRequested() { return absl::GetFlag(FLAGS_explain); }

int RunExplain(const std::vector<std::string>& paths, absl::string_view db_dir,
               bool verbose) {
  return PrintEach(paths, [&](const std::string& path) -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(Explanation e, Explain(path, db_dir, absl::Now()));
    if (absl::GetFlag(FLAGS_json)) return absl::StrCat(FormatJson(e), "\n");
    return FormatText(e, verbose);
  });
}

}  // namespace btrdupd
