// StatusServer: the per-volume Unix socket that answers "how is the daemon doing".
//
// Socket: `<socket_dir>/<volumename>.sock` (default dir /run/btrdupd), owned by the
// daemon's user (root), mode 0600: only root may ask. A socket path holds at most
// kMaxSocketPathBytes (sun_path), so a volume name too long for that is shortened to fit
// (daemon/volume_name.h ShortenName: a readable prefix and a hash); the daemon and the
// client compute the same path. Creation is careful:
//   - PrepareSocketDir() creates the directory (0755) if missing and refuses one that is
//     a symlink, not owned by us, or writable by group/others (someone else could swap
//     the socket), or too long to leave room for a socket name;
//   - Listen() refuses a path that exists and is not a socket; if it is a socket and a
//     process answers on it, another live daemon owns it (AlreadyExists); otherwise it
//     is a stale socket from a killed daemon and is replaced.
//   - The destructor removes the socket only if it is still the one this server made.
//
// Protocol: the client sends one request line (at most `max_request_bytes`, ending in
// '\n'; end-of-file also ends it) and gets one reply line of JSON, then the server
// closes the connection. A request longer than the limit, or one not finished within
// `read_timeout`, gets {"error": ...} and is closed; when `max_clients` connections
// are open, the oldest one gets {"error": "busy ..."} and is closed to make room for
// the newest. No client can stall or stop the daemon, or lock others out.
//
// Threading: none. Every socket is non-blocking; the daemon's one processing thread
// polls the descriptors from AppendPollFds() (with a timeout no later than
// NextDeadline()) between units of work and calls Service(), which never blocks. While
// a unit runs, connections wait in the listen backlog; clients should allow for that
// (the bundled client waits up to 30 s). Replies are small (a few KiB) and always fit
// in an empty socket buffer, so one non-blocking send() delivers them.

#ifndef BTRDUPD_DAEMON_STATUS_SERVER_H_
#define BTRDUPD_DAEMON_STATUS_SERVER_H_

#include <poll.h>
#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/volume_name.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {

inline constexpr char kDefaultSocketDir[] = "/run/btrdupd";

// The longest path a Unix socket can be bound to (sizeof(sun_path) less the NUL).
inline constexpr size_t kMaxSocketPathBytes = 107;
// The longest --socket-dir that leaves room for the shortest socket name.
inline constexpr size_t kMaxSocketDirBytes = kMaxSocketPathBytes - 1 - kMinShortNameBytes - 5;

// `<socket_dir>/<volume_name>.sock`, the name shortened so that the whole path has at
// most kMaxSocketPathBytes when `socket_dir` has at most kMaxSocketDirBytes.
std::string SocketPathFor(absl::string_view socket_dir, absl::string_view volume_name);

// Creates `dir` (mode 0755) if missing; checks it is safe (see above).
absl::Status PrepareSocketDir(const std::string& dir);

struct StatusServerOptions {
  size_t max_request_bytes = 4096;
  absl::Duration read_timeout = absl::Seconds(2);
  int max_clients = 64;
};

class StatusServer {
 public:
  // Gets the reply for one request line (without the '\n').
  using Responder = std::function<std::string(absl::string_view request)>;

  static absl::StatusOr<std::unique_ptr<StatusServer>> Listen(
      const std::string& socket_path, const StatusServerOptions& options);
  ~StatusServer();

  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  const std::string& path() const { return path_; }

  // Adds the listening socket and every open client connection (POLLIN).
  void AppendPollFds(std::vector<pollfd>& fds) const;

  // The earliest read deadline of an open connection; InfiniteFuture() if none.
  absl::Time NextDeadline() const;

  // Accepts waiting connections, reads what clients sent, answers complete requests
  // through `responder`, and closes connections that are done, oversized or timed out.
  // Never blocks.
  void Service(absl::Time now, const Responder& responder);

  // Connections answered, and refused/failed (oversized, timeout, busy), since start.
  int64_t answered() const { return answered_; }
  int64_t rejected() const { return rejected_; }

 private:
  struct Client {
    UniqueFd fd;
    std::string buffer;
    absl::Time deadline;
  };

  StatusServer(std::string path, UniqueFd fd, dev_t dev, ino_t ino,
               const StatusServerOptions& options);

  // Reads from `client`; returns true when it is finished (answered or dropped).
  bool ReadAndMaybeAnswer(Client& client, absl::Time now, const Responder& responder);
  void Reply(Client& client, const std::string& reply);

  const std::string path_;
  UniqueFd listen_fd_;
  const dev_t dev_;
  const ino_t ino_;
  const StatusServerOptions options_;
  std::vector<std::unique_ptr<Client>> clients_;
  int64_t answered_ = 0;
  int64_t rejected_ = 0;
};

// Client side: connects to `socket_path`, sends `request` + '\n', returns the reply
// (without the trailing newline). NotFound/Unavailable when no daemon answers there
// (the message names the socket); DeadlineExceeded after `timeout`.
absl::StatusOr<std::string> QueryStatusSocket(const std::string& socket_path,
                                              absl::string_view request,
                                              absl::Duration timeout);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_STATUS_SERVER_H_
