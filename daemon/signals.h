// SignalWatcher: the daemon's signals as readable events on a file descriptor.
//
// Create() blocks SIGTERM, SIGINT and SIGHUP for the process (call it before any other
// thread starts) and opens a signalfd for them, so a signal never interrupts a unit of
// work half-way: the loop polls fd() together with its sockets, and reads what arrived
// between units with Take(). SIGPIPE is ignored (a status client that hangs up must
// not kill the daemon; writes then fail with EPIPE).
//
//   SIGTERM, SIGINT  -> stop: finish the current unit, commit, restore read-only flags,
//                       exit 0;
//   SIGHUP           -> reload: re-read each volume's .btrdupd.conf.
//
// StopPending() lets a long unit (hashing a huge file) ask, without consuming anything,
// whether a stop signal is waiting, so it can abandon its work safely.
//
// Child processes inherit the blocked mask; whoever starts one should reset it there
// (e.g. posix_spawnattr_setsigmask with an empty set). The destructor restores the mask
// and dispositions Create() changed.
//
// Thread-compatible.

#ifndef BTRDUPD_DAEMON_SIGNALS_H_
#define BTRDUPD_DAEMON_SIGNALS_H_

#include <signal.h>

#include <memory>

#include "absl/status/statusor.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {

struct SignalEvents {
  bool stop = false;    // SIGTERM or SIGINT arrived
  bool reload = false;  // SIGHUP arrived
  int stop_signal = 0;  // which one asked to stop (for the log)
};

class SignalWatcher {
 public:
  static absl::StatusOr<std::unique_ptr<SignalWatcher>> Create();
  ~SignalWatcher();

  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  // Readable (POLLIN) when a signal is waiting. Non-blocking.
  int fd() const { return fd_.get(); }

  // Consumes every waiting signal and says what they ask for.
  SignalEvents Take();

  // True if SIGTERM or SIGINT is waiting (not consumed). Cheap: one syscall.
  bool StopPending() const;

 private:
  SignalWatcher(UniqueFd fd, sigset_t old_mask, struct sigaction old_pipe)
      : fd_(std::move(fd)), old_mask_(old_mask), old_pipe_(old_pipe) {}

  UniqueFd fd_;
  sigset_t old_mask_;
  struct sigaction old_pipe_;
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_SIGNALS_H_
