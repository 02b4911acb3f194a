// ReadAheadPool: threads that read the first bytes of files into the page cache ahead of
// the one thread that hashes them (one-shot --jobs=N).
//
// The engine hints the files it will hash next (FileAccess::Prefetch). Without a pool
// the hint is a POSIX_FADV_WILLNEED on the engine's own thread, which waits for the
// extent lookups of every hinted file; with a pool, N threads read the hinted bytes
// (pread into a scratch buffer), so that many files are looked up and read at once while
// the engine hashes, and the engine's own read finds them cached.
//
// Each request is a Ticket. The caller either takes it (it reads the file itself now: a
// read not started is skipped, one under way finishes and its pages stay cached for the
// caller) or drops it (not wanted: a read not started is skipped, one under way or done
// has its pages dropped again, POSIX_FADV_DONTNEED, by the pool or by the caller). So
// read-ahead never leaves pages cached that nobody reads.
//
// The caller opens each file (on its own thread, by its own rules: daemon/file_opener.h)
// and hands over the descriptor; the pool only reads it, and closes it after the read.
// Read errors are ignored: read-ahead is only a hint.
//
// A request can also carry a HashStream (core/hash_stream.h: an open file and its
// SHA-256 states): then the thread reads the first bytes through the stream, so they are
// hashed there, off the caller's thread, and the caller takes the stream back
// (TakeStream) to go on from where the thread stopped. A stream the caller does not take
// back is destroyed with its ticket, on whichever thread lets go of it last.
//
// Thread-safe. The destructor stops the threads; queued reads are not done.

#ifndef BTRDUPD_DAEMON_READ_AHEAD_POOL_H_
#define BTRDUPD_DAEMON_READ_AHEAD_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/hash_stream.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {

class ReadAheadPool {
 public:
  struct Ticket;

  // `threads` >= 1.
  explicit ReadAheadPool(int threads);
  ~ReadAheadPool();

  ReadAheadPool(const ReadAheadPool&) = delete;
  ReadAheadPool& operator=(const ReadAheadPool&) = delete;

  // Queues a read of the first `bytes` of the open file `fd` (oldest first).
  std::shared_ptr<Ticket> Submit(UniqueFd fd, uint64_t bytes);

  // Queues reading (and so hashing) the first `bytes` of `stream` (oldest first).
  std::shared_ptr<Ticket> SubmitStream(std::unique_ptr<HashStream> stream, uint64_t bytes);

  // The caller reads the file now: see the file comment.
  void Take(const std::shared_ptr<Ticket>& ticket);

  // For a SubmitStream() ticket: the stream back, as far as a thread read it (not at all
  // when none started; waits while one is reading it); nullptr when that read failed
  // (the caller reads the file anew) or the stream was taken already.
  std::unique_ptr<HashStream> TakeStream(const std::shared_ptr<Ticket>& ticket);

  // Not wanted any more. Returns true if the pool may have read pages of it that the
  // caller must drop (the read is done); a read under way drops its own pages. For a
  // SubmitStream() ticket always false: the stream's own file decides what it leaves
  // cached when it is destroyed.
  bool Drop(const std::shared_ptr<Ticket>& ticket);

  // Requests read so far (for tests and logs).
  int64_t reads_done() const;

  // Waits until nothing is queued and no read is under way (for tests).
  void Drain();

 private:
  void Work();

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable idle_;  // signalled when a read ends
  int reading_ = 0;
  std::deque<std::shared_ptr<Ticket>> queue_;
  bool stopping_ = false;
  int64_t reads_done_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_READ_AHEAD_POOL_H_
