#include "core/file_hasher.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "absl/types/span.h"
#include "core/hash_stream.h"
#include "core/status_macros.h"

namespace btrdupd {

namespace {

using Outcome = HashReading::Outcome;

HashReading Reading(Outcome outcome, const HashStream* stream,
                    absl::Status error = absl::OkStatus()) {
  HashReading reading;
  reading.outcome = outcome;
  reading.bytes_read = stream != nullptr ? stream->data_read() : 0;
  reading.error = std::move(error);
  return reading;
}

// A read error, or the interruption should_stop asked for.
HashReading ReadFailure(const absl::Status& status, const HashStream& stream) {
  if (absl::IsCancelled(status)) return Reading(Outcome::kInterrupted, &stream);
  return Reading(Outcome::kReadFailed, &stream, status);
}

}  // namespace

FileHasher::FileHasher(FileAccess* files, FileHasherOptions options)
    : files_(files), options_(std::move(options)) {}

absl::Span<char> FileHasher::Buffer() {
  // Allocated at the first read: an engine that never hashes costs no buffer.
  if (buffer_.empty()) buffer_.assign(std::max<size_t>(options_.read_buffer_bytes, 4096), '\0');
  return absl::Span<char>(buffer_.data(), buffer_.size());
}

absl::StatusOr<HashReading> FileHasher::Hash(const FileRef& ref, const FileRecord& file,
                                             bool prefix_first,
                                             const ReadOnDecision& read_on) {
  // A stream a read-ahead thread began (its first bytes already hashed there), else the
  // file opened here.
  std::shared_ptr<HashStream> begun = files_->TakeHashStream(ref);
  if (begun != nullptr && begun->prefix_bytes() != options_.prefix_bytes) begun.reset();
  if (begun != nullptr) {
    if (!MatchesRecord(begun->opened(), file)) return Reading(Outcome::kChanged, nullptr);
  } else {
    absl::StatusOr<std::unique_ptr<SequentialFile>> opened = files_->OpenForRead(ref);
    if (!opened.ok()) return Reading(Outcome::kOpenFailed, nullptr, opened.status());
    absl::StatusOr<FileStat> before = (*opened)->Stat();
    if (!before.ok() || !MatchesRecord(*before, file)) {
      return Reading(Outcome::kChanged, nullptr);
    }
    ASSIGN_OR_RETURN(HashStream started,
                     HashStream::Start(std::move(*opened), *before, options_.prefix_bytes));
    begun = std::make_shared<HashStream>(std::move(started));
  }
  HashStream& stream = *begun;
  const absl::Span<char> buffer = Buffer();

  bool whole = !prefix_first;
  std::string prefix_digest;
  if (prefix_first) {
    absl::StatusOr<bool> more = stream.ReadTo(options_.prefix_bytes, buffer, options_.should_stop);
    if (!more.ok()) return ReadFailure(more.status(), stream);
    if (!*more) return Reading(Outcome::kChanged, &stream);  // shorter than recorded
    ASSIGN_OR_RETURN(prefix_digest, stream.PrefixDigest());
    if (read_on) {
      ASSIGN_OR_RETURN(whole, read_on(prefix_digest));
    }
  } else if (file.hash_state == HashState::kPrefix) {
    prefix_digest = file.hash;
  }

  if (!whole) {
    absl::StatusOr<bool> unchanged = stream.Unchanged();
    if (!unchanged.ok() || !*unchanged) return Reading(Outcome::kChanged, &stream);
    HashReading reading = Reading(Outcome::kPrefix, &stream);
    reading.prefix_digest = std::move(prefix_digest);
    return reading;
  }
  // Counted from here on by ReadWhole; what was read so far is added back.
  const uint64_t read_so_far = stream.data_read();
  auto partial = std::make_unique<HashInProgress>();
  partial->stream = std::move(begun);
  partial->file = file;
  partial->prefix_digest = std::move(prefix_digest);
  ASSIGN_OR_RETURN(HashReading reading, ReadWhole(std::move(partial)));
  reading.bytes_read += read_so_far;
  return reading;
}

absl::StatusOr<HashReading> FileHasher::Resume(std::unique_ptr<HashInProgress> partial,
                                               const FileRecord& now) {
  const FileRecord& started = partial->file;
  const bool same_record = now.id == started.id && now.size == started.size &&
                           now.mtime_ns == started.mtime_ns && now.ino == started.ino &&
                           now.hash_state == started.hash_state && now.hash == started.hash;
  if (!same_record) return Reading(Outcome::kChanged, nullptr);
  absl::StatusOr<bool> unchanged = partial->stream->Unchanged();
  if (!unchanged.ok() || !*unchanged) return Reading(Outcome::kChanged, nullptr);
  return ReadWhole(std::move(partial));
}

absl::StatusOr<HashReading> FileHasher::ReadWhole(std::unique_ptr<HashInProgress> partial) {
  HashStream& stream = *partial->stream;
  const FileRecord& file = partial->file;
  const uint64_t data_before = stream.data_read();
  const absl::Span<char> buffer = Buffer();
  auto counted = [&](HashReading reading) {
    reading.bytes_read = stream.data_read() - data_before;
    return reading;
  };
  const uint64_t slice_end = options_.slice_bytes > 0
                                 ? std::min(file.size, stream.offset() + options_.slice_bytes)
                                 : file.size;
  bool more = true;
  while (more && stream.offset() < slice_end) {
    // With slice_over, one buffer at a time so that it is asked between reads.
    const uint64_t end = options_.slice_over
                             ? std::min<uint64_t>(slice_end, stream.offset() + buffer.size())
                             : slice_end;
    absl::StatusOr<bool> read = stream.ReadTo(end, buffer, options_.should_stop);
    if (!read.ok()) return counted(ReadFailure(read.status(), stream));
    more = *read;
    if (options_.slice_over && stream.offset() < file.size && options_.slice_over()) break;
  }
  if (more && stream.offset() < file.size) {
    HashReading reading = counted(Reading(Outcome::kPartial, &stream));
    reading.partial = std::move(partial);
    return reading;
  }
  // At the recorded size (or the file ended before it): nothing may follow.
  bool ends_here = !more;
  if (more) {
    absl::StatusOr<bool> end = stream.AtEnd();
    if (!end.ok()) return counted(ReadFailure(end.status(), stream));
    ends_here = *end;
  }
  // A short file shows as offset != size.
  if (!ends_here || stream.offset() != file.size) {
    return counted(Reading(Outcome::kChanged, &stream));
  }
  absl::StatusOr<bool> unchanged = stream.Unchanged();
  if (!unchanged.ok() || !*unchanged) return counted(Reading(Outcome::kChanged, &stream));
  if (stream.data_read() == 0 && file.size > 0) {
    return counted(Reading(Outcome::kAllHoles, &stream));
  }
  HashReading reading = counted(Reading(Outcome::kFull, &stream));
  ASSIGN_OR_RETURN(reading.full_digest, stream.FullDigest());
  if (partial->prefix_digest.empty()) {
    ASSIGN_OR_RETURN(partial->prefix_digest, stream.PrefixDigest());
  }
  reading.prefix_digest = std::move(partial->prefix_digest);
  return reading;
}

absl::StatusOr<PrefixReading> FileHasher::PrefixOf(const FileRef& ref, const FileRecord& file) {
  PrefixReading reading;
  absl::StatusOr<std::unique_ptr<SequentialFile>> opened = files_->OpenForRead(ref);
  if (!opened.ok()) return reading;
  absl::StatusOr<FileStat> before = (*opened)->Stat();
  if (!before.ok() || !MatchesRecord(*before, file)) return reading;
  ASSIGN_OR_RETURN(HashStream stream,
                   HashStream::Start(std::move(*opened), *before, options_.prefix_bytes));
  absl::StatusOr<bool> more =
      stream.ReadTo(options_.prefix_bytes, Buffer(), options_.should_stop);
  reading.bytes_read = stream.data_read();
  if (!more.ok() || !*more) return reading;
  absl::StatusOr<bool> unchanged = stream.Unchanged();
  if (!unchanged.ok() || !*unchanged) return reading;
  ASSIGN_OR_RETURN(std::string digest, stream.PrefixDigest());
  reading.digest = std::move(digest);
  return reading;
}

}  // namespace btrdupd
