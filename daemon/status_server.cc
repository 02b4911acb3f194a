#include "daemon/status_server.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/status_json.h"
#include "daemon/volume_name.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace {

absl::StatusOr<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "socket path ", path, " is longer than ", sizeof(addr.sun_path) - 1,
        " bytes; choose a --socket-dir of at most ", kMaxSocketDirBytes, " bytes"));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Connects a non-blocking-created stream socket to `path` (blocking connect: a Unix
// socket connect completes or fails at once). Returns the fd or the errno.
absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path) {
  absl::StatusOr<sockaddr_un> addr = UnixAddress(path);
  if (!addr.ok()) return addr.status();
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return btrdupd::ErrnoToStatus(errno, "socket(AF_UNIX)");
  int rc;
  do {
    rc = connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return btrdupd::ErrnoToStatus(errno, absl::StrCat("connect ", path));
  return fd;
}

}  // namespace

std::string SocketPathFor(absl::string_view socket_dir, absl::string_view volume_name) {
  constexpr absl::string_view kSuffix = ".sock";
  const size_t fixed = socket_dir.size() + 1 + kSuffix.size();
  const size_t room = fixed < kMaxSocketPathBytes ? kMaxSocketPathBytes - fixed : 0;
  return absl::StrCat(socket_dir, "/",
                      ShortenName(volume_name, std::max(room, kMinShortNameBytes)), kSuffix);
}

absl::Status PrepareSocketDir(const std::string& dir) {
  if (dir.size() > kMaxSocketDirBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "socket directory ", dir, " is ", dir.size(), " bytes long; a Unix socket path "
        "holds at most ", kMaxSocketPathBytes, " bytes, so choose a --socket-dir of at most ",
        kMaxSocketDirBytes, " bytes"));
  }
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return btrdupd::ErrnoToStatus(errno, absl::StrCat("mkdir ", dir));
  }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    return btrdupd::ErrnoToStatus(errno, absl::StrCat("lstat ", dir));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket directory ", dir, " is not a directory (or is a symlink)"));
  }
  if (st.st_uid != geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "socket directory ", dir, " is owned by uid ", st.st_uid, ", not by uid ",
        geteuid(), " running btrdupd; fix its owner or choose another --socket-dir"));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "socket directory ", dir, " is writable by group or others (mode ",
        absl::StrFormat("%04o", st.st_mode & 07777),
        "); make it 0755 or choose another --socket-dir"));
  }
  return absl::OkStatus();
}

StatusServer::StatusServer(std::string path, UniqueFd fd, dev_t dev, ino_t ino,
                           const StatusServerOptions& options)
    : path_(std::move(path)),
      listen_fd_(std::move(fd)),
      dev_(dev),
      ino_(ino),
      options_(options) {}

absl::StatusOr<std::unique_ptr<StatusServer>> StatusServer::Listen(
    const std::string& socket_path, const StatusServerOptions& options) {
  absl::StatusOr<sockaddr_un> addr = UnixAddress(socket_path);
  if (!addr.ok()) return addr.status();

  struct stat st;
  if (lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(
          socket_path, " exists and is not a socket; btrdupd will not remove it"));
    }
    if (ConnectUnix(socket_path).ok()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "another btrdupd daemon already answers on ", socket_path,
          " for this volume; stop it first"));
    }
    // Stale: left by a daemon that was killed.
    if (unlink(socket_path.c_str()) != 0 && errno != ENOENT) {
      return btrdupd::ErrnoToStatus(errno, absl::StrCat("unlink stale socket ", socket_path));
    }
  } else if (errno != ENOENT) {
    return btrdupd::ErrnoToStatus(errno, absl::StrCat("lstat ", socket_path));
  }

  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return btrdupd::ErrnoToStatus(errno, "socket(AF_UNIX)");
  // The socket file is created by bind() with the umask applied: 0177 leaves 0600, so
  // there is no moment when others may connect. One thread, so the umask is ours.
  mode_t old_umask = umask(0177);
  int rc = bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr));
  int bind_errno = errno;
  umask(old_umask);
  if (rc != 0) return btrdupd::ErrnoToStatus(bind_errno, absl::StrCat("bind ", socket_path));
  if (chmod(socket_path.c_str(), 0600) != 0 || lstat(socket_path.c_str(), &st) != 0) {
    int err = errno;
    unlink(socket_path.c_str());
    return btrdupd::ErrnoToStatus(err, absl::StrCat("chmod 0600 ", socket_path));
  }
  if (listen(fd.get(), 128) != 0) {
    int err = errno;
    unlink(socket_path.c_str());
    return btrdupd::ErrnoToStatus(err, absl::StrCat("listen ", socket_path));
  }
  return std::unique_ptr<StatusServer>(
      new StatusServer(socket_path, std::move(fd), st.st_dev, st.st_ino, options));
}

StatusServer::~StatusServer() {
  struct stat st;
  if (lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) {
    unlink(path_.c_str());
  }
}

void StatusServer::AppendPollFds(std::vector<pollfd>& fds) const {
  fds.push_back(pollfd{listen_fd_.get(), POLLIN, 0});
  for (const auto& client : clients_) fds.push_back(pollfd{client->fd.get(), POLLIN, 0});
}

absl::Time StatusServer::NextDeadline() const {
  absl::Time deadline = absl::InfiniteFuture();
  for (const auto& client : clients_) deadline = std::min(deadline, client->deadline);
  return deadline;
}

void StatusServer::Reply(Client& client, const std::string& reply) {
  std::string line = reply + "\n";
  // Best effort: a client that went away gets nothing (EPIPE; SIGPIPE is suppressed).
  ssize_t n;
  do {
    n = send(client.fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
}

bool StatusServer::ReadAndMaybeAnswer(Client& client, absl::Time now,
                                      const Responder& responder) {
  char buf[1024];
  for (;;) {
    ssize_t n = recv(client.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      ++rejected_;
      return true;  // connection error: drop it
    }
    const bool eof = (n == 0);
    client.buffer.append(buf, static_cast<size_t>(n));
    size_t newline = client.buffer.find('\n');
    if (newline != std::string::npos && newline <= options_.max_request_bytes) {
      std::string request = client.buffer.substr(0, newline);
      if (!request.empty() && request.back() == '\r') request.pop_back();
      Reply(client, responder(request));
      ++answered_;
      return true;
    }
    if (client.buffer.size() > options_.max_request_bytes) {
      Reply(client, ErrorReplyJson(absl::StrCat("request longer than ",
                                                options_.max_request_bytes, " bytes")));
      ++rejected_;
      return true;
    }
    if (eof) {
      if (client.buffer.empty()) {
        ++rejected_;  // connected and hung up without asking
        return true;
      }
      // A request without its newline, ended by shutdown(SHUT_WR): answer it.
      Reply(client, responder(client.buffer));
      ++answered_;
      return true;
    }
  }
  if (now >= client.deadline) {
    Reply(client, ErrorReplyJson("request not completed in time; send one line"));
    ++rejected_;
    return true;
  }
  return false;
}

void StatusServer::Service(absl::Time now, const Responder& responder) {
  // Accept everything waiting. Beyond max_clients the oldest connection is answered
  // "busy" and closed, so a flood cannot grow memory nor lock out a new client.
  for (;;) {
    int fd = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      break;  // EAGAIN, or EMFILE etc.: try again on the next Service()
    }
    auto client = std::make_unique<Client>();
    client->fd.reset(fd);
    client->deadline = now + options_.read_timeout;
    if (static_cast<int>(clients_.size()) >= std::max(options_.max_clients, 1)) {
      // Full: the oldest connection (the slowest to send its line) makes room, so a
      // pile of stalled clients can never lock out a new one.
      Reply(*clients_.front(), ErrorReplyJson("busy: too many status clients at once; retry"));
      ++rejected_;
      clients_.erase(clients_.begin());
    }
    clients_.push_back(std::move(client));
  }
  std::vector<std::unique_ptr<Client>> still_open;
  for (auto& client : clients_) {
    if (!ReadAndMaybeAnswer(*client, now, responder)) still_open.push_back(std::move(client));
  }
  clients_ = std::move(still_open);
}

absl::StatusOr<std::string> QueryStatusSocket(const std::string& socket_path,
                                              absl::string_view request,
                                              absl::Duration timeout) {
  absl::StatusOr<UniqueFd> fd = ConnectUnix(socket_path);
  if (!fd.ok()) return fd.status();
  const absl::Time deadline = absl::Now() + timeout;
  std::string line = absl::StrCat(request, "\n");
  size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = send(fd->get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return btrdupd::ErrnoToStatus(errno, absl::StrCat("send to ", socket_path));
    }
    sent += static_cast<size_t>(n);
  }
  std::string reply;
  char buf[4096];
  for (;;) {
    int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no reply from ", socket_path, " within ", absl::FormatDuration(timeout)));
    }
    pollfd pfd{fd->get(), POLLIN, 0};
    int rc = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left_ms, 1000)));
    if (rc < 0 && errno != EINTR) {
      return btrdupd::ErrnoToStatus(errno, absl::StrCat("poll ", socket_path));
    }
    if (rc <= 0) continue;
    ssize_t n = recv(fd->get(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return btrdupd::ErrnoToStatus(errno, absl::StrCat("recv from ", socket_path));
    }
    if (n == 0) break;
    reply.append(buf, static_cast<size_t>(n));
    if (reply.size() > (1 << 20)) {
      return absl::DataLossError(absl::StrCat("reply from ", socket_path, " too long"));
    }
  }
  while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.pop_back();
  return reply;
}

}  // namespace btrdupd
