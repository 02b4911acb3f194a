// FileHasher: hashes one indexed file through FileAccess - its prefix, its whole
// content, or the prefix and then, if the caller wants, the rest in the same read.
//
// The file must still be the one its FileRecord describes (size, mtime, inode at the
// open; fstat unchanged at the end; exactly `size` bytes long): otherwise the answer is
// kChanged and nothing was hashed. The hasher only reads and reports; what an outcome
// means for the index (skip, wait again, remove) is the caller's decision.
//
// Slices: with FileHasherOptions::slice_bytes (or slice_over) a whole-file read stops
// part-way and answers kPartial, handing back a HashInProgress (the open file, both
// digest states, the record it was started for); Resume() goes on from there in a later
// call. Resume() first checks that the index still records the same file and that fstat
// of the open file says what it said at the open: otherwise kChanged, and the partial
// state is dropped (a file is never hashed from two states of its bytes).
//
// Where it plugs in: the reading itself is a HashStream (core/hash_stream.h), which
// holds the open file and both digest states; a hash done in time-bounded slices keeps
// that stream between steps, and a hash done off the engine's thread runs the stream
// there with its own buffer. FileHasher adds the open, the identity checks and the
// prefix-then-whole decision on top.
//
// Thread-compatible: one thread at a time (it owns one read buffer).

#ifndef BTRDUPD_CORE_FILE_HASHER_H_
#define BTRDUPD_CORE_FILE_HASHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/file_access.h"
#include "core/hash_stream.h"
#include "core/index.h"

namespace btrdupd {

struct FileHasherOptions {
  // Bytes of the prefix digest (HashState::kPrefix).
  uint64_t prefix_bytes = 64 * 1024;
  // Size of each read() (at least 4096 is used).
  size_t read_buffer_bytes = 1 << 20;
  // Checked before every read; when it returns true the hash is abandoned (kInterrupted).
  std::function<bool()> should_stop;
  // A whole-file read stops once it is this many bytes further into the file (holes are
  // skipped at no cost and may carry it further), or once `slice_over` returns true
  // (asked between reads of read_buffer_bytes), and answers kPartial. 0 and no
  // slice_over: each call reads to the end.
  uint64_t slice_bytes = 0;
  std::function<bool()> slice_over;
};

// A whole-file hash stopped part-way (HashReading::kPartial); owns the open file.
struct HashInProgress {
  std::shared_ptr<HashStream> stream;
  FileRecord file;            // the record it was started for
  std::string prefix_digest;  // known before reading on; "" when the stream makes it
  uint64_t offset() const { return stream->offset(); }
};

// What hashing one file came to.
struct HashReading {
  enum class Outcome {
    kPrefix,       // only the prefix was read: prefix_digest
    kFull,         // the whole file was read: full_digest, and prefix_digest (read now or
                   // known from the record's kPrefix hash)
    kOpenFailed,   // FileAccess could not open it: `error` as it said (NotFound: gone;
                   // IsTreeChanged: not the file the scan recorded)
    kChanged,      // not what the index recorded, or changed while being read
    kReadFailed,   // a read failed: `error`
    kInterrupted,  // FileHasherOptions::should_stop said so; nothing to record
    kAllHoles,     // the whole file was read and is only holes: no data on disk
    kPartial,      // a slice was read (see "Slices"): `partial` goes on with Resume()
  };
  Outcome outcome = Outcome::kChanged;
  std::string prefix_digest;  // 32 raw bytes, or "" (see Outcome)
  std::string full_digest;    // kFull only
  uint64_t bytes_read = 0;    // data bytes read from this file (holes excluded)
  absl::Status error;         // kOpenFailed, kReadFailed
  std::unique_ptr<HashInProgress> partial;  // kPartial only
};

// The file `stat` describes is still the one the index recorded (size, mtime, inode).
inline bool MatchesRecord(const FileStat& stat, const FileRecord& file) {
  return stat.size == file.size && stat.mtime_ns == file.mtime_ns && stat.ino == file.ino;
}

// A prefix digest read on its own (see FileHasher::PrefixOf).
struct PrefixReading {
  std::optional<std::string> digest;  // nullopt: unreadable, changed, or interrupted
  uint64_t bytes_read = 0;
};

class FileHasher {
 public:
  // Once the prefix is hashed, says whether to read on to the whole file. Its error is
  // returned by Hash() as it is.
  using ReadOnDecision = std::function<absl::StatusOr<bool>(const std::string& prefix_digest)>;

  // `files` is borrowed and must outlive the hasher.
  FileHasher(FileAccess* files, FileHasherOptions options);

  // Hashes `file` (opened as `ref`). With `prefix_first` the first prefix_bytes are read
  // and hashed, then `read_on` decides whether the rest is read too (kFull) or not
  // (kPrefix). Without it the whole file is read (kFull); a record in HashState::kPrefix
  // lends its prefix digest. A non-OK status is only a failure that is not the file's
  // (no SHA-256 context, or `read_on`'s error); everything about the file is an Outcome.
  absl::StatusOr<HashReading> Hash(const FileRef& ref, const FileRecord& file,
                                   bool prefix_first, const ReadOnDecision& read_on = nullptr);

  // Goes on with a hash that answered kPartial, if `now` (the index's record of the file
  // at this moment) is still the record it was started for and the open file did not
  // change; kChanged (and the partial state dropped) otherwise. Reads the next slice:
  // kPartial again, or the outcome of the whole hash as Hash() gives it. bytes_read
  // counts this call's reads only.
  absl::StatusOr<HashReading> Resume(std::unique_ptr<HashInProgress> partial,
                                     const FileRecord& now);

  // The prefix digest of `file`, when it can be read and has not changed. Non-OK only
  // when no SHA-256 context can be made.
  absl::StatusOr<PrefixReading> PrefixOf(const FileRef& ref, const FileRecord& file);

  uint64_t prefix_bytes() const { return options_.prefix_bytes; }

 private:
  absl::Span<char> Buffer();
  // Reads on to the end of the file or of the slice, and finishes the hash there.
  absl::StatusOr<HashReading> ReadWhole(std::unique_ptr<HashInProgress> partial);

  FileAccess* const files_;
  const FileHasherOptions options_;
  std::string buffer_;
};

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_FILE_HASHER_H_
