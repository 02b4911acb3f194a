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
  std::optional<HashStream> opened_here;
  if (begun != nullptr) {
    if (!MatchesRecord(begun->opened(), file)) return Reading(Outcome::kChanged, nullptr);
  } else {
    absl::StatusOr<std::unique_ptr<SequentialFile>> opened = files_->OpenForRead(ref);
    if (!opened.ok()) return Reading(Outcome::kOpenFailed, nullptr, opened.status());
    absl::StatusOr<FileStat> before = (*opened)->Stat();
    if (!before.ok() || !MatchesRecord(*before, file)) {
      return Reading(Outcome::kChanged, nullptr);
    }
    ASSIGN_OR_RETURN(opened_here,
                     HashStream::Start(std::move(*opened), *before, options_.prefix_bytes));
  }
  HashStream& stream = begun != nullptr ? *begun : *opened_here;
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
  const bool prefix_from_read = whole && prefix_digest.empty();

  if (whole) {
    absl::StatusOr<bool> read = stream.ReadTo(file.size, buffer, options_.should_stop);
    bool ends_here = false;  // nothing after file.size: it did not grow
    if (read.ok()) {
      absl::StatusOr<bool> end = stream.AtEnd();
      if (!end.ok()) return ReadFailure(end.status(), stream);
      ends_here = *end;
    } else {
      return ReadFailure(read.status(), stream);
    }
    // A short file shows as offset != size.
    if (!ends_here || stream.offset() != file.size) return Reading(Outcome::kChanged, &stream);
  }
  absl::StatusOr<bool> unchanged = stream.Unchanged();
  if (!unchanged.ok() || !*unchanged) return Reading(Outcome::kChanged, &stream);
  if (whole && stream.data_read() == 0 && file.size > 0) {
    return Reading(Outcome::kAllHoles, &stream);
  }
  HashReading reading = Reading(whole ? Outcome::kFull : Outcome::kPrefix, &stream);
  if (whole) {
    ASSIGN_OR_RETURN(reading.full_digest, stream.FullDigest());
    if (prefix_from_read) {
      ASSIGN_OR_RETURN(prefix_digest, stream.PrefixDigest());
    }
  }
  reading.prefix_digest = std::move(prefix_digest);
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
