#include "daemon/real_file_access.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "absl/strings/str_cat.h"
#include "core/hash_stream.h"
#include "ioctl/errno_status.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {
namespace {

FileStat ToFileStat(const struct stat& st) {
  FileStat out;
  out.ino = st.st_ino;
  out.size = static_cast<uint64_t>(st.st_size);
  out.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return out;
}

}  // namespace

class RealSequentialFile : public SequentialFile {
 public:
  // `owner` keeps the read pages cached within its budget (nullptr: drop as read).
  // `hinted`: bytes from the start that Prefetch() asked for (cached even if not read).
  RealSequentialFile(UniqueFd fd, RealFileAccess* owner, FileRef file, uint64_t hinted)
      : fd_(std::move(fd)), owner_(owner), file_(std::move(file)), hinted_(hinted) {
    posix_fadvise(fd_.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  }

  ~RealSequentialFile() override {
    if (Keeping() && !abandoned_.load()) {
      owner_->KeepCached(std::move(file_), std::max(offset_, hinted_));
    } else {
      DropCache();
      if (hinted_ > offset_) {  // prefetched but not read
        posix_fadvise(fd_.get(), static_cast<off_t>(offset_),
                      static_cast<off_t>(hinted_ - offset_), POSIX_FADV_DONTNEED);
      }
    }
  }

  // Nobody will read this file on (a read-ahead hint given up): when destroyed, on any
  // thread, it drops what it read instead of keeping it cached. Thread-safe.
  void Abandon() { abandoned_.store(true); }

  absl::StatusOr<FileStat> Stat() override {
    struct stat st;
    if (fstat(fd_.get(), &st) != 0) {
      return btrdupd::ErrnoToStatus(errno, absl::StrCat("fstat ", DescribeFd(fd_.get())));
    }
    return ToFileStat(st);
  }

  absl::StatusOr<DataSpan> NextData() override {
    DataSpan span;
    const off_t data = lseek(fd_.get(), static_cast<off_t>(offset_), SEEK_DATA);
    uint64_t to = 0;
    if (data >= 0) {
      to = static_cast<uint64_t>(data);
      const off_t hole = lseek(fd_.get(), data, SEEK_HOLE);
      if (hole < 0) {
        return btrdupd::ErrnoToStatus(errno, absl::StrCat("lseek ", DescribeFd(fd_.get())));
      }
      span.data = static_cast<uint64_t>(hole) - to;
    } else if (errno == ENXIO) {  // only holes up to the end of the file
      struct stat st;
      if (fstat(fd_.get(), &st) != 0) {
        return btrdupd::ErrnoToStatus(errno, absl::StrCat("fstat ", DescribeFd(fd_.get())));
      }
      to = std::max<uint64_t>(static_cast<uint64_t>(st.st_size), offset_);
      span.data = 0;
    } else if (errno == EINVAL || errno == EOPNOTSUPP) {
      return span;  // no hole information: read everything
    } else {
      return btrdupd::ErrnoToStatus(errno, absl::StrCat("lseek ", DescribeFd(fd_.get())));
    }
    if (to > offset_) {
      span.hole = to - offset_;
      offset_ = to;
    }
    return span;
  }

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    while (true) {
      // pread: the descriptor may be a duplicate of one FileOpener keeps (shared offset).
      ssize_t got = pread(fd_.get(), buf, n, static_cast<off_t>(offset_));
      if (got >= 0) {
        offset_ += static_cast<uint64_t>(got);
        if (!Keeping() && (offset_ - dropped_ >= kDropEvery || got == 0)) DropCache();
        return static_cast<size_t>(got);
      }
      if (errno != EINTR) {
        return btrdupd::ErrnoToStatus(errno, absl::StrCat("read ", DescribeFd(fd_.get())));
      }
    }
  }

 private:
  static constexpr uint64_t kDropEvery = uint64_t{8} << 20;

  // Forgets the pages read so far (they were only needed for hashing).
  void DropCache() {
    if (owner_ != nullptr && dropped_ == 0 && offset_ > 0) {
      // Over the budget: from now on drop as read, including what was kept so far.
      posix_fadvise(fd_.get(), 0, 0, POSIX_FADV_DONTNEED);
    }
    if (offset_ > dropped_) {
      posix_fadvise(fd_.get(), static_cast<off_t>(dropped_),
                    static_cast<off_t>(offset_ - dropped_), POSIX_FADV_DONTNEED);
      dropped_ = offset_;
    }
  }

  // Whether the pages read so far stay cached for the dedupe that follows.
  bool Keeping() const {
    return owner_ != nullptr && offset_ <= owner_->keep_cached_bytes_;
  }

  UniqueFd fd_;
  RealFileAccess* const owner_;
  FileRef file_;
  const uint64_t hinted_;
  std::atomic<bool> abandoned_{false};
  uint64_t offset_ = 0;
  uint64_t dropped_ = 0;
};

void RealFileAccess::DropCachedFile(const FileRef& file) {
  absl::StatusOr<UniqueFd> fd = opener_->OpenForRead(file);
  if (!fd.ok()) return;  // gone or moved: its pages are not ours to drop
  posix_fadvise(fd->get(), 0, 0, POSIX_FADV_DONTNEED);
}

RealFileAccess::RealFileAccess(FileOpener* opener, uint64_t keep_cached_bytes,
                               int read_ahead_threads, uint64_t hash_prefix_bytes)
    : opener_(opener),
      keep_cached_bytes_(keep_cached_bytes),
      hash_prefix_bytes_(hash_prefix_bytes) {
  if (read_ahead_threads > 0) pool_ = std::make_unique<ReadAheadPool>(read_ahead_threads);
}

RealFileAccess::~RealFileAccess() {
  pool_.reset();  // no read-ahead after this
  for (const Hinted& hint : hinted_) DropCachedFile(hint.file);
  while (!cached_.empty()) {
    DropCachedFile(cached_.front().first);
    cached_.pop_front();
  }
}

void RealFileAccess::KeepCached(FileRef file, uint64_t bytes) {
  cached_.emplace_back(std::move(file), bytes);
  cached_bytes_ += bytes;
  while (cached_bytes_ > keep_cached_bytes_ && !cached_.empty()) {
    DropCachedFile(cached_.front().first);
    cached_bytes_ -= cached_.front().second;
    cached_.pop_front();
  }
}

void RealFileAccess::Prefetch(const FileRef& file, uint64_t bytes) {
  // Hints not read while this many later ones were made are dropped from the cache.
  constexpr uint64_t kMaxHintedBytes = uint64_t{64} << 20;
  constexpr size_t kMaxHintedFiles = 256;
  if (bytes == 0) return;
  absl::StatusOr<UniqueFd> fd = opener_->OpenForRead(file);
  if (!fd.ok()) return;
  Hinted hint{file, bytes, nullptr};
  if (pool_ != nullptr && hash_prefix_bytes_ > 0) {
    // A read-ahead thread reads the first bytes through a HashStream, so they are hashed
    // there too (TakeHashStream() hands the stream to the hasher).
    struct stat st;
    if (fstat(fd->get(), &st) != 0) return;
    auto opened = std::make_unique<RealSequentialFile>(
        std::move(*fd), keep_cached_bytes_ > 0 ? this : nullptr, file, /*hinted=*/0);
    RealSequentialFile* const raw = opened.get();
    absl::StatusOr<HashStream> stream =
        HashStream::Start(std::move(opened), ToFileStat(st), hash_prefix_bytes_);
    if (!stream.ok()) return;
    hint.ticket =
        pool_->SubmitStream(std::make_unique<HashStream>(*std::move(stream)), bytes);
    hint.stream_file = raw;
  } else if (pool_ != nullptr) {
    hint.ticket = pool_->Submit(std::move(*fd), bytes);
  } else {
    posix_fadvise(fd->get(), 0, static_cast<off_t>(bytes), POSIX_FADV_WILLNEED);
  }
  hinted_.push_back(std::move(hint));
  hinted_bytes_ += bytes;
  while (hinted_bytes_ > kMaxHintedBytes || hinted_.size() > kMaxHintedFiles) {
    DropOldestHint();
  }
}

void RealFileAccess::DropOldestHint() {
  Hinted& oldest = hinted_.front();
  // Its stream (if any) drops what it read when it goes, on whichever thread.
  if (oldest.stream_file != nullptr) oldest.stream_file->Abandon();
  // A read-ahead not started is cancelled; one under way drops its own pages.
  if (oldest.ticket == nullptr || pool_->Drop(oldest.ticket)) DropCachedFile(oldest.file);
  hinted_bytes_ -= oldest.bytes;
  hinted_.pop_front();
}

uint64_t RealFileAccess::TakeHint(const FileRef& file) {
  for (auto it = hinted_.begin(); it != hinted_.end(); ++it) {
    if (it->file.subvol_id != file.subvol_id || it->file.ino != file.ino ||
        it->file.path != file.path) {
      continue;
    }
    const uint64_t bytes = it->bytes;
    if (it->stream_file != nullptr) {
      // Read anew by the caller: the stream goes here, keeping (not dropping) what its
      // thread read, so the caller's read finds it cached.
      pool_->TakeStream(it->ticket);
    } else if (it->ticket != nullptr) {
      pool_->Take(it->ticket);
    }
    hinted_bytes_ -= bytes;
    hinted_.erase(it);
    return bytes;
  }
  return 0;
}

std::shared_ptr<HashStream> RealFileAccess::TakeHashStream(const FileRef& file) {
  for (auto it = hinted_.begin(); it != hinted_.end(); ++it) {
    if (it->stream_file == nullptr || it->file.subvol_id != file.subvol_id ||
        it->file.ino != file.ino || it->file.path != file.path) {
      continue;
    }
    std::unique_ptr<HashStream> stream = pool_->TakeStream(it->ticket);
    hinted_bytes_ -= it->bytes;
    hinted_.erase(it);
    return stream;  // nullptr if its read failed: the caller opens the file anew
  }
  return nullptr;
}

absl::StatusOr<std::unique_ptr<SequentialFile>> RealFileAccess::OpenForRead(
    const FileRef& file) {
  const uint64_t hinted = TakeHint(file);
  absl::StatusOr<UniqueFd> fd = opener_->OpenForRead(file);
  if (!fd.ok()) return fd.status();  // a hint whose file moved: nothing of ours to drop
  return std::unique_ptr<SequentialFile>(new RealSequentialFile(
      std::move(*fd), keep_cached_bytes_ > 0 ? this : nullptr, file, hinted));
}

absl::StatusOr<FileStat> RealFileAccess::Stat(const FileRef& file) {
  absl::StatusOr<UniqueFd> fd = opener_->OpenPath(file);
  if (!fd.ok()) return fd.status();
  struct stat st;
  if (fstat(fd->get(), &st) != 0) {
    return btrdupd::ErrnoToStatus(errno, absl::StrCat("fstat ", file.display));
  }
  return ToFileStat(st);
}

}  // namespace btrdupd
