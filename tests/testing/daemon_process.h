// Running the built `btrdupd` binary as a child process from an integration test.
//
// DaemonBinaryPath() finds //daemon:btrdupd in the test's runfiles (the test lists it
// under `data`). DaemonProcess forks and execs it with stdout and stderr appended to a
// log file; the destructor kills (SIGKILL) and reaps a child still running, so no test
// leaves a daemon behind. WaitFor() polls a condition: tests wait for observable states
// with generous deadlines and never assert a duration.
//
// Thread-compatible: one owner.

#ifndef BTRDUPD_TESTS_TESTING_DAEMON_PROCESS_H_
#define BTRDUPD_TESTS_TESTING_DAEMON_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace btrdupd {
namespace testing {

inline constexpr absl::Duration kDaemonDeadline = absl::Seconds(90);

// The btrdupd binary from the runfiles, else "daemon/btrdupd".
std::string DaemonBinaryPath();

// realpath(path), or path itself if that fails.
std::string CanonicalPath(const std::string& path);

// A short temporary directory (/tmp/btrdupd-XXXXXX) for a test that runs the daemon: a
// Unix socket path holds at most 107 bytes and socket names come from mount paths, so the
// test's volumes (LoopBtrfs makes them under TEST_TMPDIR), its socket directory and its
// logs live there. Destroying it puts TEST_TMPDIR back as it was and removes the
// directory: destroy it after the children and volumes that use it.
class DaemonTestDir {
 public:
  // With `own_test_tmpdir`, TEST_TMPDIR points at the new directory until destruction.
  static absl::StatusOr<std::unique_ptr<DaemonTestDir>> Create(bool own_test_tmpdir = true);
  ~DaemonTestDir();
  DaemonTestDir(const DaemonTestDir&) = delete;
  DaemonTestDir& operator=(const DaemonTestDir&) = delete;

  const std::string& path() const { return path_; }
  // `path()`/sock, made empty.
  const std::string& socket_dir() const { return socket_dir_; }

 private:
  DaemonTestDir() = default;
  std::string path_;
  std::string socket_dir_;
  std::optional<std::string> saved_tmpdir_;  // nullopt: TEST_TMPDIR was not set
};

// Polls `done` every 100 ms until it holds or `deadline` passes; returns its last value.
bool WaitFor(const std::function<bool()>& done, absl::Duration deadline = kDaemonDeadline);

class DaemonProcess {
 public:
  // Starts argv[0] with argv[1..]; its output is appended to `log_path`.
  DaemonProcess(const std::vector<std::string>& argv, const std::string& log_path);
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  pid_t pid() const { return pid_; }
  // False once it exited (then exit_code() says how).
  bool running();
  // Sends `sig` and waits for the exit; returns the exit code (128+signal if killed),
  // or -1 if it did not exit within `timeout` (it is then killed).
  int Signal(int sig, absl::Duration timeout = kDaemonDeadline);
  int exit_code() const { return exit_code_; }
  // Everything it wrote so far.
  std::string Log() const;

 private:
  const std::string log_path_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_code_ = -1;
};

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_DAEMON_PROCESS_H_
