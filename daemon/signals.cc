#include "daemon/signals.h"

#include <errno.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ioctl/errno_status.h"

namespace btrdupd {
namespace {

sigset_t WatchedSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SignalWatcher>> SignalWatcher::Create() {
  sigset_t set = WatchedSignals();
  sigset_t old_mask;
  if (sigprocmask(SIG_BLOCK, &set, &old_mask) != 0) {
    return btrdupd::ErrnoToStatus(errno, "sigprocmask(SIG_BLOCK TERM INT HUP)");
  }
  int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    return btrdupd::ErrnoToStatus(err, "signalfd(TERM INT HUP)");
  }
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  struct sigaction old_pipe = {};
  sigaction(SIGPIPE, &ignore, &old_pipe);
  return std::unique_ptr<SignalWatcher>(
      new SignalWatcher(UniqueFd(fd), old_mask, old_pipe));
}

SignalWatcher::~SignalWatcher() {
  sigaction(SIGPIPE, &old_pipe_, nullptr);
  fd_.reset();
  sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
}

SignalEvents SignalWatcher::Take() {
  SignalEvents events;
  struct signalfd_siginfo info;
  for (;;) {
    ssize_t n = read(fd_.get(), &info, sizeof(info));
    if (n != static_cast<ssize_t>(sizeof(info))) {
      if (n < 0 && errno == EINTR) continue;
      break;  // EAGAIN: nothing more waiting
    }
    switch (info.ssi_signo) {
      case SIGTERM:
      case SIGINT:
        events.stop = true;
        events.stop_signal = static_cast<int>(info.ssi_signo);
        break;
      case SIGHUP:
        events.reload = true;
        break;
      default:
        break;
    }
  }
  return events;
}

bool SignalWatcher::StopPending() const {
  sigset_t pending;
  if (sigpending(&pending) != 0) return false;
  return sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1;
}

}  // namespace btrdupd
