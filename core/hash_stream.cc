#include "core/hash_stream.h"

#include <algorithm>

#include "core/status_macros.h"

namespace btrdupd {

absl::StatusOr<HashStream> HashStream::Start(std::unique_ptr<SequentialFile> file,
                                             FileStat opened, uint64_t prefix_bytes) {
  ASSIGN_OR_RETURN(Sha256 prefix, Sha256::Create());
  ASSIGN_OR_RETURN(Sha256 full, Sha256::Create());
  return HashStream(std::move(file), opened, prefix_bytes, std::move(prefix), std::move(full));
}

absl::StatusOr<bool> HashStream::ReadTo(uint64_t end, absl::Span<char> buffer,
                                        const std::function<bool()>& should_stop) {
  while (offset_ < end) {
    if (should_stop && should_stop()) return absl::CancelledError("interrupted");
    if (data_left_ == 0) {
      ASSIGN_OR_RETURN(SequentialFile::DataSpan span, file_->NextData());
      if (span.hole > 0) {
        AddHole(offset_, span.hole);
        offset_ += span.hole;
      }
      data_left_ = span.data;
      if (offset_ >= end) break;
      if (data_left_ == 0) data_left_ = UINT64_MAX;  // at the end: the read says so
    }
    const size_t want = static_cast<size_t>(
        std::min<uint64_t>({buffer.size(), end - offset_, data_left_}));
    ASSIGN_OR_RETURN(size_t got, file_->Read(buffer.data(), want));
    if (got == 0) return false;
    if (data_left_ != UINT64_MAX) data_left_ -= got;
    data_read_ += got;
    absl::string_view chunk(buffer.data(), got);
    if (offset_ < prefix_bytes_) {
      const size_t in_prefix =
          static_cast<size_t>(std::min<uint64_t>(got, prefix_bytes_ - offset_));
      RETURN_IF_ERROR(prefix_.Update(chunk.substr(0, in_prefix)));
    }
    RETURN_IF_ERROR(full_.Update(chunk));
    offset_ += got;
  }
  return true;
}

absl::StatusOr<bool> HashStream::AtEnd() {
  char probe[1];
  ASSIGN_OR_RETURN(size_t got, file_->Read(probe, 1));
  if (got != 0) ++offset_;
  return got == 0;
}

absl::StatusOr<bool> HashStream::Unchanged() {
  ASSIGN_OR_RETURN(FileStat now, file_->Stat());
  return now == opened_;
}

absl::StatusOr<std::string> HashStream::PrefixDigest() {
  RETURN_IF_ERROR(prefix_.Update(HoleLayout(prefix_bytes_)));
  ASSIGN_OR_RETURN(std::string digest, prefix_.Finish());
  return digest.substr(0, kFileDigestBytes);
}

absl::StatusOr<std::string> HashStream::FullDigest() {
  RETURN_IF_ERROR(full_.Update(HoleLayout(UINT64_MAX)));
  ASSIGN_OR_RETURN(std::string digest, full_.Finish());
  return digest.substr(0, kFileDigestBytes);
}

void HashStream::AddHole(uint64_t start, uint64_t length) {
  if (!holes_.empty() && holes_.back().first + holes_.back().second == start) {
    holes_.back().second += length;
  } else {
    holes_.emplace_back(start, length);
  }
}

// A marker, then (start, length) of each hole below `limit` (clipped to it), 8 bytes
// each, little-endian.
std::string HashStream::HoleLayout(uint64_t limit) const {
  std::string out;
  for (const auto& [start, length] : holes_) {
    if (start >= limit) break;
    if (out.empty()) out.assign("\0btrdupd-holes", 14);
    const uint64_t clipped = std::min(length, limit - start);
    for (uint64_t v : {start, clipped}) {
      for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
  }
  return out;
}

}  // namespace btrdupd
