// HashStream: the SHA-256 digests of one open file, read from its start.
//
// One pass over the file feeds two digests at once: the prefix digest (its first
// `prefix_bytes`) and the whole-file digest, so a prefix that turns out to match can be
// continued to the whole file without reading its start again.
//
// Holes are skipped, not read (SequentialFile::NextData): only data is fed to the
// digests, and the holes' places and lengths are added when a digest is finished, so the
// same bytes with another hole layout hash differently, and the digest does not depend
// on how the reads were cut. A file without holes hashes as the plain SHA-256 of its
// bytes, cut to its first kFileDigestBytes.
//
// Everything a partly read file needs to go on (the open file, both digest states, the
// offset, the holes so far) lives in the object, which is movable: it may be kept
// between two calls of ReadTo() (a hash done in slices) or handed to another thread (it
// shares nothing; the read buffer is the caller's).
//
// Thread-compatible: one thread at a time.

#ifndef BTRDUPD_CORE_HASH_STREAM_H_
#define BTRDUPD_CORE_HASH_STREAM_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/file_access.h"
#include "core/sha256.h"

namespace btrdupd {

// The length of a file digest: the first 16 bytes of the SHA-256 above. The digest
// only groups candidates (same size, same digest); what proves two files identical is
// the kernel's byte-by-byte compare in FIDEDUPERANGE, and a file is recorded as deduped
// only after FIEMAP shows it shares its extents. Two different files of one size with
// equal 128-bit digests would cost one refused compare, never a wrong dedupe. Half the
// digest halves what the index stores per hashed file (core/index_schema.cc).
inline constexpr size_t kFileDigestBytes = 16;

class HashStream {
 public:
  // `opened` is what fstat said right after the open (see Unchanged()).
  static absl::StatusOr<HashStream> Start(std::unique_ptr<SequentialFile> file,
                                          FileStat opened, uint64_t prefix_bytes);

  HashStream(HashStream&&) = default;
  HashStream& operator=(HashStream&&) = default;

  // Reads until `end` bytes (holes included) are behind, or the file ends. Returns false
  // at end of file, Cancelled when `should_stop` (may be empty; checked before each
  // read) says so; a read error as FileAccess reported it. `buffer` (not empty) is
  // scratch space; each read() takes at most its size.
  absl::StatusOr<bool> ReadTo(uint64_t end, absl::Span<char> buffer,
                              const std::function<bool()>& should_stop);

  // True if the file ends exactly at the current offset (one extra read).
  absl::StatusOr<bool> AtEnd();

  // True if fstat still says what it said when the file was opened.
  absl::StatusOr<bool> Unchanged();

  // The digests (kFileDigestBytes raw bytes). Each can be taken once; take PrefixDigest() only after
  // the prefix was read (or the file ended), FullDigest() only at the end.
  absl::StatusOr<std::string> PrefixDigest();
  absl::StatusOr<std::string> FullDigest();

  // The length of the prefix digest (given to Start()).
  uint64_t prefix_bytes() const { return prefix_bytes_; }
  // What fstat said when the file was opened (given to Start()).
  const FileStat& opened() const { return opened_; }

  // Where the reading is (holes included).
  uint64_t offset() const { return offset_; }
  // Bytes of data read (holes excluded).
  uint64_t data_read() const { return data_read_; }

 private:
  HashStream(std::unique_ptr<SequentialFile> file, FileStat opened, uint64_t prefix_bytes,
             Sha256 prefix, Sha256 full)
      : file_(std::move(file)),
        opened_(opened),
        prefix_bytes_(prefix_bytes),
        prefix_(std::move(prefix)),
        full_(std::move(full)) {}

  // Records a hole, merged with the one before when they touch.
  void AddHole(uint64_t start, uint64_t length);
  // The holes below `limit` ("" for none): a marker, then (start, length) of each.
  std::string HoleLayout(uint64_t limit) const;

  std::unique_ptr<SequentialFile> file_;
  FileStat opened_;
  uint64_t prefix_bytes_;
  Sha256 prefix_;
  Sha256 full_;
  uint64_t offset_ = 0;
  uint64_t data_read_ = 0;
  uint64_t data_left_ = 0;  // of the current data span (MAX: unknown)
  std::vector<std::pair<uint64_t, uint64_t>> holes_;  // (start, length), merged
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_HASH_STREAM_H_
