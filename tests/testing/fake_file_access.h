// In-memory FileAccess and DedupeBackend for testing the dedupe engine's logic.
//
// FakeFileAccess holds files by absolute path: contents, inode number, mtime,
// attributes, and an "extent id" standing for the physical extents (two files share all
// extents iff their extent ids are equal; a reflink copy or a dedupe gives the
// destination the source's id; ids change only through SetExtent, which keeps a count
// of holders per id, so HasSharedExtents is a lookup). A file that is only holes has extent id 0: it stores
// nothing, so two such files share all extents and neither shares any (as FIEMAP says).
// An open file keeps what it was opened on: after an unlink or a replacement of its
// path, Read() and Stat() still answer for the opened inode (like an fd). It counts the bytes read per path, so tests can assert
// how much I/O the engine did. Subvolumes are path prefixes with flags.
//
// FakeDedupeBackend shares a destination with the reference when their contents are
// equal (like the kernel, which compares bytes), reports "differs" otherwise, and fails
// for paths given a forced error. Like the native backend it fails the whole request
// when the reference is another inode (Aborted) or not of the request's size
// (FailedPrecondition), and a destination that is another inode (Aborted) or immutable
// (EPERM; the kernel does dedupe into an append-only file). Like current kernels it
// dedupes into read-only
// subvolumes, except on a read-only mount (EROFS); after RefuseReadOnlySubvolumes() it
// answers EROFS for every read-only subvolume, like older kernels. It records every call.
//
// Its errors are made by ioctl/errno_status.h, with the errno the kernel would give.
// tests/file_access_contract_test.cc holds FakeFileAccess to RealFileAccess.
//
// Header-only; not thread-safe.

#ifndef BTRDUPD_TESTS_TESTING_FAKE_FILE_ACCESS_H_
#define BTRDUPD_TESTS_TESTING_FAKE_FILE_ACCESS_H_

#include <errno.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/dedupe_backend.h"
#include "core/file_access.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace testing {

class FakeFileAccess : public FileAccess {
 public:
  struct File {
    std::string contents;
    uint64_t ino = 0;
    int64_t mtime_ns = 0;
    FileAttributes attrs;
    int64_t extent_id = 0;
  };

  // Adds (or replaces) a file with its own extents.
  File& AddFile(const std::string& path, std::string contents, uint64_t ino,
                int64_t mtime_ns = 1000) {
    File& f = files_[path];
    f.contents = std::move(contents);
    f.ino = ino;
    f.mtime_ns = mtime_ns;
    SetExtent(f, ++next_extent_);
    return f;
  }

  // Adds (or replaces) a file of `size` zero bytes that is only holes (truncate -s).
  File& AddHoles(const std::string& path, uint64_t size, uint64_t ino) {
    File& f = AddFile(path, std::string(size, '\0'), ino);
    SetExtent(f, 0);
    return f;
  }

  // `dest` gets `src`'s extents (and contents), like a reflink copy or a snapshot.
  void ShareExtents(const std::string& dest, const std::string& src) {
    files_[dest].contents = files_[src].contents;
    SetExtent(files_[dest], files_[src].extent_id);
  }

  // Rewrites a file in place: new contents, new extents, mtime + 1.
  void Modify(const std::string& path, std::string contents) {
    File& f = files_.at(path);
    f.contents = std::move(contents);
    f.mtime_ns += 1;
    SetExtent(f, ++next_extent_);
  }

  void Remove(const std::string& path) {
    auto it = files_.find(path);
    if (it == files_.end()) return;
    SetExtent(it->second, 0);
    files_.erase(it);
  }
  File& file(const std::string& path) { return files_.at(path); }
  bool Exists(const std::string& path) const { return files_.count(path) > 0; }

  void AddSubvolume(const std::string& path, SubvolumeFlags flags) { subvols_[path] = flags; }
  const SubvolumeFlags& subvolume(const std::string& path) { return subvols_.at(path); }
  // Every SetSubvolumeReadOnly call, as "path=ro" / "path=rw".
  const std::vector<std::string>& flag_log() const { return flag_log_; }

  // Called after each Read() of `path` (e.g. to modify the file while it is read).
  void OnRead(std::function<void(const std::string& path)> hook) { on_read_ = std::move(hook); }

  uint64_t bytes_read() const { return bytes_read_; }
  uint64_t bytes_read(const std::string& path) const {
    auto it = bytes_read_by_path_.find(path);
    return it == bytes_read_by_path_.end() ? 0 : it->second;
  }
  int opens() const { return opens_; }

  bool SharesAllExtents(const std::string& a, const std::string& b) const {
    return files_.at(a).extent_id == files_.at(b).extent_id;
  }

  // Appends `more` to a file in place: new extents, mtime + 1.
  void Append(const std::string& path, const std::string& more) {
    Modify(path, files_.at(path).contents + more);
  }

  // The subvolume (longest matching prefix) `path` lies in, or "" for the top level.
  std::string SubvolumeOfPath(const std::string& path) const {
    std::string best;
    for (const auto& [subvol, flags] : subvols_) {
      if (absl::StartsWith(path, subvol + "/") && subvol.size() > best.size()) best = subvol;
    }
    return best;
  }

  // Prefetch() and OpenForRead() calls in order: "prefetch PATH BYTES", "open PATH".
  const std::vector<std::string>& access_log() const { return access_log_; }

  // --- FileAccess ---
  // Files and subvolumes are looked up by the display path of their ref; a file whose
  // inode is not the ref's (when the ref names one) answers Aborted, like the real
  // verified open.
  absl::StatusOr<std::unique_ptr<SequentialFile>> OpenForRead(const FileRef& ref) override {
    absl::Status found = Check(ref, "open");
    if (!found.ok()) return found;
    const std::string& path = ref.display;
    if (unreadable_.count(path)) return ErrnoToStatus(EACCES, absl::StrCat("open ", path));
    ++opens_;
    access_log_.push_back(absl::StrCat("open ", path));
    return std::unique_ptr<SequentialFile>(new Reader(this, path));
  }

  void Prefetch(const FileRef& ref, uint64_t bytes) override {
    access_log_.push_back(absl::StrCat("prefetch ", ref.display, " ", bytes));
  }

  absl::StatusOr<FileStat> Stat(const FileRef& ref) override {
    absl::Status found = Check(ref, "stat");
    if (!found.ok()) return found;
    return StatPath(ref.display);
  }

  absl::StatusOr<FileAttributes> GetAttributes(const FileRef& ref) override {
    absl::Status found = Check(ref, "getflags");
    if (!found.ok()) return found;
    return files_.at(ref.display).attrs;
  }

  absl::StatusOr<bool> SharesAllExtents(const FileRef& a, const FileRef& b) override {
    ++fiemaps_;
    absl::Status found = Check(a, "fiemap");
    if (found.ok()) found = Check(b, "fiemap");
    if (!found.ok()) return found;
    return SharesAllExtents(a.display, b.display);
  }

  absl::StatusOr<bool> HasSharedExtents(const FileRef& ref) override {
    ++fiemaps_;
    absl::Status found = Check(ref, "fiemap");
    if (!found.ok()) return found;
    const std::string& path = ref.display;
    const int64_t extent_id = files_.at(path).extent_id;
    if (extent_id == 0) return false;  // only holes
    auto holders = extent_holders_.find(extent_id);
    return holders != extent_holders_.end() && holders->second > 1;
  }

  absl::StatusOr<SubvolumeFlags> GetSubvolumeFlags(const SubvolumeRef& subvol) override {
    auto it = subvols_.find(subvol.display);
    if (it == subvols_.end()) {
      return ErrnoToStatus(ENOENT, absl::StrCat("subvol ", subvol.display));
    }
    return it->second;
  }

  absl::Status SetSubvolumeReadOnly(const SubvolumeRef& subvol, bool read_only) override {
    const std::string& subvol_path = subvol.display;
    auto it = subvols_.find(subvol_path);
    if (it == subvols_.end()) return ErrnoToStatus(ENOENT, absl::StrCat("subvol ", subvol_path));
    auto failing = failing_set_read_only_.find({subvol_path, read_only});
    if (failing != failing_set_read_only_.end() && !failing->second.ok()) return failing->second;
    it->second.read_only = read_only;
    flag_log_.push_back(absl::StrCat(subvol_path, read_only ? "=ro" : "=rw"));
    return absl::OkStatus();
  }

  // SetSubvolumeReadOnly(subvol_path, read_only) fails with `error`, changing nothing
  // (OkStatus: no longer fails).
  void FailSetReadOnly(const std::string& subvol_path, bool read_only, absl::Status error) {
    failing_set_read_only_[{subvol_path, read_only}] = std::move(error);
  }
  void MakeUnreadable(const std::string& path) { unreadable_[path] = true; }
  // Read() of `path` fails with an I/O error (a bad sector).
  void FailReads(const std::string& path) { failing_reads_[path] = true; }
  // Reads of `path` work again (the sector was rewritten or remapped).
  void HealReads(const std::string& path) { failing_reads_.erase(path); }
  int fiemaps() const { return fiemaps_; }

  // Gives `f` the extents `extent_id` (0: only holes). Every change of a file's extent id
  // goes through here, so that HasSharedExtents is a lookup, not a walk over all files.
  void SetExtent(File& f, int64_t extent_id) {
    if (f.extent_id != 0) {
      auto it = extent_holders_.find(f.extent_id);
      if (it != extent_holders_.end() && --it->second == 0) extent_holders_.erase(it);
    }
    f.extent_id = extent_id;
    if (extent_id != 0) ++extent_holders_[extent_id];
  }

 private:
  // NotFound if nothing is at the ref's path; Aborted if another inode is.
  absl::Status Check(const FileRef& ref, absl::string_view op) const {
    auto it = files_.find(ref.display);
    if (it == files_.end()) return ErrnoToStatus(ENOENT, absl::StrCat(op, " ", ref.display));
    if (ref.ino != 0 && it->second.ino != ref.ino) {
      return absl::AbortedError(absl::StrCat(op, " ", ref.display, ": inode ", it->second.ino,
                                             ", not ", ref.ino));
    }
    return absl::OkStatus();
  }

  FileStat StatPath(const std::string& path) const {
    const File& f = files_.at(path);
    return FileStat{f.ino, f.contents.size(), f.mtime_ns};
  }

  class Reader : public SequentialFile {
   public:
    Reader(FakeFileAccess* fs, std::string path)
        : fs_(fs), path_(std::move(path)), at_open_(fs->files_.at(path_)) {}
    absl::StatusOr<FileStat> Stat() override {
      const File& f = Opened();
      return FileStat{f.ino, f.contents.size(), f.mtime_ns};
    }
    absl::StatusOr<size_t> Read(char* buf, size_t n) override {
      if (fs_->failing_reads_.count(path_)) {
        return ErrnoToStatus(EIO, absl::StrCat("read ", path_));
      }
      const std::string& c = Opened().contents;
      if (offset_ >= c.size()) return size_t{0};
      size_t got = std::min<size_t>(n, c.size() - offset_);
      std::memcpy(buf, c.data() + offset_, got);
      offset_ += got;
      fs_->bytes_read_ += got;
      fs_->bytes_read_by_path_[path_] += got;
      if (fs_->on_read_) fs_->on_read_(path_);
      return got;
    }

   private:
    // The opened inode: the file at the path while it is still that inode (changes in
    // place are seen), else the file as it was when opened (unlinked or replaced).
    const File& Opened() const {
      auto it = fs_->files_.find(path_);
      if (it != fs_->files_.end() && it->second.ino == at_open_.ino) return it->second;
      return at_open_;
    }

    FakeFileAccess* fs_;
    std::string path_;
    File at_open_;
    size_t offset_ = 0;
  };

  std::map<std::string, File> files_;
  std::map<int64_t, int> extent_holders_;  // extent id (not 0) -> files holding it
  std::map<std::string, SubvolumeFlags> subvols_;
  std::map<std::string, bool> unreadable_;
  std::map<std::string, bool> failing_reads_;
  std::map<std::pair<std::string, bool>, absl::Status> failing_set_read_only_;
  std::vector<std::string> flag_log_;
  std::vector<std::string> access_log_;
  std::map<std::string, uint64_t> bytes_read_by_path_;
  std::function<void(const std::string&)> on_read_;
  uint64_t bytes_read_ = 0;
  int64_t next_extent_ = 0;
  int opens_ = 0;
  int fiemaps_ = 0;
};

class FakeDedupeBackend : public DedupeBackend {
 public:
  explicit FakeDedupeBackend(FakeFileAccess* fs) : fs_(fs) {}

  std::string Name() const override { return "fake"; }
  absl::Status CheckAvailable() const override { return absl::OkStatus(); }

  absl::StatusOr<std::vector<DedupeOutcome>> Dedupe(const DedupeRequest& request) override {
    calls_.push_back(request);
    if (before_call_) before_call_(request);
    if (!whole_error_.ok()) return whole_error_;
    if (!fs_->Exists(request.reference_path)) {
      return ErrnoToStatus(ENOENT, absl::StrCat("open ", request.reference_path));
    }
    const FakeFileAccess::File& reference = fs_->file(request.reference_path);
    if (request.reference.ino != 0 && reference.ino != request.reference.ino) {
      return absl::AbortedError(absl::StrCat(request.reference_path, ": another inode"));
    }
    if (reference.contents.size() != request.size) {
      return absl::FailedPreconditionError(
          absl::StrCat(request.reference_path, ": size changed"));
    }
    std::vector<DedupeOutcome> out;
    for (size_t i = 0; i < request.destination_paths.size(); ++i) {
      const std::string& dest = request.destination_paths[i];
      const uint64_t dest_ino = i < request.destinations.size() ? request.destinations[i].ino : 0;
      DedupeOutcome o;
      o.destination_path = dest;
      auto forced = errors_.find(dest);
      std::string subvol = fs_->SubvolumeOfPath(dest);
      if (forced != errors_.end() && !forced->second.ok()) {
        o.kind = DedupeOutcome::Kind::kFailed;
        o.error = forced->second;
      } else if (!fs_->Exists(dest)) {
        o.kind = DedupeOutcome::Kind::kFailed;
        o.error = ErrnoToStatus(ENOENT, absl::StrCat("open ", dest));
      } else if (dest_ino != 0 && fs_->file(dest).ino != dest_ino) {
        o.kind = DedupeOutcome::Kind::kFailed;
        o.error = absl::AbortedError(absl::StrCat(dest, ": another inode"));
      } else if (fs_->file(dest).attrs.immutable) {
        o.kind = DedupeOutcome::Kind::kFailed;
        o.error = ErrnoToStatus(EPERM, absl::StrCat("dedupe into ", dest));
      } else if (!subvol.empty() && (fs_->subvolume(subvol).on_read_only_mount ||
                                     (refuse_read_only_ && fs_->subvolume(subvol).read_only))) {
        o.kind = DedupeOutcome::Kind::kFailed;
        o.error = ErrnoToStatus(EROFS, absl::StrCat("dedupe into ", dest));
      } else if (fs_->file(dest).contents != fs_->file(request.reference_path).contents) {
        o.kind = DedupeOutcome::Kind::kDiffers;
      } else {
        fs_->SetExtent(fs_->file(dest), fs_->file(request.reference_path).extent_id);
        o.kind = DedupeOutcome::Kind::kDeduped;
        o.bytes_deduped = request.size;
      }
      out.push_back(std::move(o));
    }
    return out;
  }

  // Answers EROFS for destinations in read-only subvolumes, like older kernels.
  void RefuseReadOnlySubvolumes() { refuse_read_only_ = true; }
  // Dedupe into `path` fails with `error` (OkStatus: no longer fails).
  void FailFor(const std::string& path, absl::Status error) { errors_[path] = std::move(error); }
  // Every call fails as a whole with `error` (OkStatus: no longer fails).
  void FailEveryCall(absl::Status error) { whole_error_ = std::move(error); }
  // Runs before each call (e.g. to modify a destination after it was hashed).
  void BeforeCall(std::function<void(const DedupeRequest&)> hook) {
    before_call_ = std::move(hook);
  }
  const std::vector<DedupeRequest>& calls() const { return calls_; }

 private:
  FakeFileAccess* fs_;
  std::map<std::string, absl::Status> errors_;
  bool refuse_read_only_ = false;
  absl::Status whole_error_;
  std::vector<DedupeRequest> calls_;
  std::function<void(const DedupeRequest&)> before_call_;
};

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_FAKE_FILE_ACCESS_H_
