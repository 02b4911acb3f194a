#include "daemon/read_ahead_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

namespace btrdupd {

struct ReadAheadPool::Ticket {
  enum class State { kQueued, kReading, kRead, kTaken, kDropped };
  UniqueFd fd;  // closed once read (or when the ticket goes)
  uint64_t bytes = 0;
  State state = State::kQueued;  // guarded by the pool's mu_
  bool drop_when_read = false;   // guarded by mu_: dropped while being read
  // SubmitStream(): read through this instead of `fd` (only the reading thread touches
  // it while kReading); read_failed when that read returned an error.
  std::unique_ptr<HashStream> stream;
  bool is_stream = false;
  bool read_failed = false;  // guarded by mu_
};

ReadAheadPool::ReadAheadPool(int threads) {
  for (int i = 0; i < std::max(threads, 1); ++i) threads_.emplace_back([this] { Work(); });
}

ReadAheadPool::~ReadAheadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

std::shared_ptr<ReadAheadPool::Ticket> ReadAheadPool::Submit(UniqueFd fd, uint64_t bytes) {
  auto ticket = std::make_shared<Ticket>();
  ticket->fd = std::move(fd);
  ticket->bytes = bytes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(ticket);
  }
  wake_.notify_one();
  return ticket;
}

std::shared_ptr<ReadAheadPool::Ticket> ReadAheadPool::SubmitStream(
    std::unique_ptr<HashStream> stream, uint64_t bytes) {
  auto ticket = std::make_shared<Ticket>();
  ticket->stream = std::move(stream);
  ticket->is_stream = true;
  ticket->bytes = bytes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(ticket);
  }
  wake_.notify_one();
  return ticket;
}

std::unique_ptr<HashStream> ReadAheadPool::TakeStream(const std::shared_ptr<Ticket>& ticket) {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [&] { return ticket->state != Ticket::State::kReading; });
  if (ticket->state == Ticket::State::kQueued) ticket->state = Ticket::State::kTaken;
  std::unique_ptr<HashStream> stream = std::move(ticket->stream);
  const bool failed = ticket->read_failed;
  lock.unlock();
  if (failed) return nullptr;  // destroyed here, on the caller's thread
  return stream;
}

void ReadAheadPool::Take(const std::shared_ptr<Ticket>& ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ticket->state == Ticket::State::kQueued) ticket->state = Ticket::State::kTaken;
  // kReading: it finishes and its pages stay cached for the caller's read.
}

bool ReadAheadPool::Drop(const std::shared_ptr<Ticket>& ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ticket->is_stream) {
    if (ticket->state == Ticket::State::kQueued) ticket->state = Ticket::State::kDropped;
    return false;
  }
  switch (ticket->state) {
    case Ticket::State::kQueued:
      ticket->state = Ticket::State::kDropped;
      return false;
    case Ticket::State::kReading:
      ticket->drop_when_read = true;
      return false;
    case Ticket::State::kRead:
      return true;
    case Ticket::State::kTaken:
    case Ticket::State::kDropped:
      return false;
  }
  return false;
}

void ReadAheadPool::Drain() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return queue_.empty() && reading_ == 0; });
}

int64_t ReadAheadPool::reads_done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reads_done_;
}

void ReadAheadPool::Work() {
  constexpr size_t kChunk = size_t{1} << 20;
  std::vector<char> buffer(kChunk);
  while (true) {
    std::shared_ptr<Ticket> ticket;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      ticket = std::move(queue_.front());
      queue_.pop_front();
      if (ticket->state != Ticket::State::kQueued) {  // taken or dropped
        if (queue_.empty() && reading_ == 0) idle_.notify_all();
        continue;
      }
      ticket->state = Ticket::State::kReading;
      ++reading_;
    }
    // Only this thread touches the descriptor (or the stream) while the ticket is kReading.
    bool failed = false;
    const int fd = ticket->fd.get();
    if (ticket->is_stream) {
      failed = !ticket->stream
                    ->ReadTo(ticket->bytes, absl::Span<char>(buffer.data(), buffer.size()),
                             nullptr)
                    .ok();
    } else {
      uint64_t offset = 0;
      while (offset < ticket->bytes) {
        const size_t want =
            static_cast<size_t>(std::min<uint64_t>(kChunk, ticket->bytes - offset));
        const ssize_t got = pread(fd, buffer.data(), want, static_cast<off_t>(offset));
        if (got <= 0) break;
        offset += static_cast<uint64_t>(got);
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    ++reads_done_;
    --reading_;
    ticket->state = Ticket::State::kRead;
    ticket->read_failed = failed;
    if (ticket->drop_when_read && !ticket->is_stream) {
      posix_fadvise(fd, 0, static_cast<off_t>(ticket->bytes), POSIX_FADV_DONTNEED);
    }
    ticket->fd = UniqueFd();
    idle_.notify_all();  // Drain(), and TakeStream() waiting for this ticket
  }
}

}  // namespace btrdupd
