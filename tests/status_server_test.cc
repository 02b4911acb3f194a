// The status socket (daemon/status_server.h) without a daemon: safe creation, one
// request line and one reply, and clients that must not stall or stop the server.
// Sockets live in a fresh temp directory; nothing mounts.

#include "daemon/status_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/status_json.h"
#include "ioctl/errno_status.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {
namespace {

using ::testing::HasSubstr;

class StatusServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/btrdupd-ss-XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    dir_ = templ;
    chmod(dir_.c_str(), 0755);
    path_ = SocketPathFor(dir_, "vol");
  }
  void TearDown() override {
    server_.reset();
    unlink(path_.c_str());
    rmdir((dir_ + "/sub").c_str());
    rmdir(dir_.c_str());
  }

  void Listen(StatusServerOptions options = {}) {
    absl::StatusOr<std::unique_ptr<StatusServer>> server = StatusServer::Listen(path_, options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // Runs the server's Service() in this thread until `done` (set by a client thread).
  void ServeUntil(const std::atomic<bool>& done) {
    while (!done) {
      std::vector<pollfd> fds;
      server_->AppendPollFds(fds);
      poll(fds.data(), fds.size(), 20);
      server_->Service(absl::Now(), [](absl::string_view request) {
        return absl::StrCat("{\"echo\":", JsonQuote(request), "}");
      });
    }
  }

  int Connect() {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd);
      return -1;
    }
    return fd;
  }

  static std::string ReadAll(int fd) {
    std::string out;
    char buf[1024];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, n);
    return out;
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<StatusServer> server_;
};

TEST_F(StatusServerTest, SocketIsMode0600AndRemovedWithTheServer) {
  Listen();
  struct stat st;
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  server_.reset();
  EXPECT_NE(lstat(path_.c_str(), &st), 0);
}

TEST_F(StatusServerTest, AnswersOneLineWithOneReply) {
  Listen();
  std::atomic<bool> done{false};
  std::string reply;
  std::thread client([&] {
    absl::StatusOr<std::string> r = QueryStatusSocket(path_, "status", absl::Seconds(10));
    reply = r.ok() ? *r : std::string(r.status().ToString());
    done = true;
  });
  ServeUntil(done);
  client.join();
  EXPECT_EQ(reply, "{\"echo\":\"status\"}");
  EXPECT_EQ(server_->answered(), 1);
}

TEST_F(StatusServerTest, OversizedRequestGetsAnErrorAndServerGoesOn) {
  StatusServerOptions options;
  options.max_request_bytes = 100;
  Listen(options);
  std::atomic<bool> done{false};
  std::string first, second;
  std::thread client([&] {
    int fd = Connect();
    std::string big(5000, 'x');
    (void)!send(fd, big.data(), big.size(), MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
    first = ReadAll(fd);
    close(fd);
    absl::StatusOr<std::string> r = QueryStatusSocket(path_, "status", absl::Seconds(10));
    second = r.ok() ? *r : std::string(r.status().ToString());
    done = true;
  });
  ServeUntil(done);
  client.join();
  EXPECT_THAT(first, HasSubstr("\"error\""));
  EXPECT_THAT(first, HasSubstr("longer than 100 bytes"));
  EXPECT_EQ(second, "{\"echo\":\"status\"}");
}

TEST_F(StatusServerTest, SlowClientTimesOutWithoutBlockingOthers) {
  StatusServerOptions options;
  options.read_timeout = absl::Milliseconds(300);
  Listen(options);
  std::atomic<bool> done{false};
  std::string slow_reply, fast_reply;
  std::thread client([&] {
    int slow = Connect();
    (void)!send(slow, "sta", 3, MSG_NOSIGNAL);  // never finishes its line
    absl::StatusOr<std::string> r = QueryStatusSocket(path_, "status", absl::Seconds(10));
    fast_reply = r.ok() ? *r : std::string(r.status().ToString());
    slow_reply = ReadAll(slow);  // the server closes it after the timeout
    close(slow);
    done = true;
  });
  ServeUntil(done);
  client.join();
  EXPECT_EQ(fast_reply, "{\"echo\":\"status\"}");
  EXPECT_THAT(slow_reply, HasSubstr("not completed in time"));
}

TEST_F(StatusServerTest, WhenFullTheOldestClientMakesRoomForTheNewest) {
  StatusServerOptions options;
  options.max_clients = 2;
  Listen(options);
  std::vector<int> stalled;
  for (int i = 0; i < 3; ++i) {
    stalled.push_back(Connect());
    server_->Service(absl::Now(), [](absl::string_view) { return std::string("{}"); });
  }
  EXPECT_THAT(ReadAll(stalled[0]), HasSubstr("busy"));  // evicted for the third
  // A real client still gets through while the stalled ones hang on.
  std::atomic<bool> done{false};
  std::string reply;
  std::thread client([&] {
    absl::StatusOr<std::string> r = QueryStatusSocket(path_, "status", absl::Seconds(10));
    reply = r.ok() ? *r : std::string(r.status().ToString());
    done = true;
  });
  ServeUntil(done);
  client.join();
  EXPECT_EQ(reply, "{\"echo\":\"status\"}");
  for (int fd : stalled) close(fd);
}

TEST_F(StatusServerTest, StaleSocketIsReplacedLiveOneAndOtherFilesAreRefused) {
  Listen();
  // Another live server on the same path: refused.
  absl::StatusOr<std::unique_ptr<StatusServer>> second = StatusServer::Listen(path_, {});
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsAlreadyExists(second.status())) << second.status();
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("another btrdupd daemon"));

  // A stale socket (its server gone without cleaning up) is replaced.
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  server_.reset();
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);  // bound, never listening: nobody answers
  Listen();

  // A regular file in its place is never removed.
  server_.reset();
  FILE* f = fopen(path_.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  absl::StatusOr<std::unique_ptr<StatusServer>> over_file = StatusServer::Listen(path_, {});
  EXPECT_TRUE(absl::IsFailedPrecondition(over_file.status())) << over_file.status();
  EXPECT_THAT(std::string(over_file.status().message()), HasSubstr("not a socket"));
}

TEST_F(StatusServerTest, UnsafeSocketDirectoryIsRefused) {
  const std::string sub = dir_ + "/sub";
  EXPECT_TRUE(PrepareSocketDir(sub).ok());
  struct stat st;
  ASSERT_EQ(stat(sub.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  ASSERT_EQ(chmod(sub.c_str(), 0777), 0);
  absl::Status unsafe = PrepareSocketDir(sub);
  EXPECT_TRUE(absl::IsFailedPrecondition(unsafe)) << unsafe;
  EXPECT_THAT(std::string(unsafe.message()), HasSubstr("writable by group or others"));
}

TEST_F(StatusServerTest, NoSocketIsNotFound) {
  absl::StatusOr<std::string> r = QueryStatusSocket(path_, "status", absl::Seconds(1));
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_EQ(ErrnoOf(r.status()), ENOENT);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(path_));
}

// The socket of a daemon that died: the file is there, nobody listens.
TEST_F(StatusServerTest, ASocketNobodyListensOnIsUnavailable) {
  {
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM, 0));
    ASSERT_TRUE(fd.valid());
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(path_.size(), sizeof(addr.sun_path));
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    ASSERT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  absl::StatusOr<std::string> r = QueryStatusSocket(path_, "status", absl::Seconds(1));
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_EQ(ErrnoOf(r.status()), ECONNREFUSED);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(path_));
}

}  // namespace
}  // namespace btrdupd
