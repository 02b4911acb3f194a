// DuperemoveBackend: the DedupeBackend that runs the duperemove(8) binary.
//
// For users who trust duperemove's long track record more than a new ioctl loop. The
// engine has already hashed the files and chosen the reference, so duperemove is run
// in its whole-file mode, which hashes nothing: `duperemove --fdupes -d` with one
// group on standard input.
//
// Files, never paths: btrdupd opens every file of a request itself, through the
// volume's FileOpener (daemon/file_opener.h: beneath the volume root, no link followed,
// identity checked), checks it is the request's size, and hands duperemove the open
// descriptor as /proc/self/fd/N (inherited; all else btrdupd holds is close-on-exec). duperemove 0.15 opens that name, i.e. the very
// file btrdupd checked. Older releases resolve it to a path first (realpath), so for
// them a rename between btrdupd's check and duperemove's open is still possible; the
// FIEMAP checks below and the kernel's byte comparison keep that harmless to data.
//
// Versions (daemon/duperemove_version.h): CheckAvailable() runs `duperemove --version`
// and refuses a release whose behaviour btrdupd does not know, so the backend fails at
// start-up, not in the middle of a run. The version is read again whenever the binary
// changes (an upgrade under a running daemon). The reference goes where that release
// keeps its source (first up to 0.13, last from 0.15) and -A is passed only where it
// exists (0.11, 0.12).
//
// Invocations: at most Options::max_files_per_run files each (duperemove starts a new
// group, with a new source, after 120), never two files with one inode number in the
// same invocation (duperemove aborts; copies of a file in snapshots share its inode
// number, so they are spread over invocations), and names adding up to at most
// `max_arg_length` bytes. A destination with the reference's own inode number (its
// copy in a snapshot) cannot run with the reference: it runs with a stand-in source, a
// destination of this request that FIEMAP shows sharing all of the reference's extents
// by then; without one it fails (FailedPrecondition) and waits for the next reset.
//
// Safety checks around each invocation: the reference's extents (FIEMAP) must be the
// same afterwards - the source of a whole-file dedupe keeps its extents, so a change
// means duperemove used another file as the source (a received snapshot's copy must
// never become a destination): that is a BackendFailure, as are a binary that cannot
// run or is not a supported release, a non-zero exit other than a failed kernel call,
// and a crash (SIGSEGV, SIGABRT ...). Each invocation runs in its own session and
// process group (setsid: Ctrl-C on btrdupd's terminal does not reach it) with a
// deadline (Options::min_deadline plus the time to compare its bytes at
// Options::min_bytes_per_second); a run killed by a signal from outside (SIGTERM at
// systemd stop, SIGINT, SIGKILL), at its deadline, or because btrdupd is stopping
// (Options::should_stop: a Ctrl-C of btrdupd does not wait for the run) fails its
// destinations with Unavailable, so the engine tries them again in a later pass.
//
// Outcomes are read conservatively from duperemove's output (daemon/duperemove_output.h)
// and are claims the engine verifies with FIEMAP, as for every backend.
//
// Not thread-safe.

#ifndef BTRDUPD_DAEMON_DUPEREMOVE_BACKEND_H_
#define BTRDUPD_DAEMON_DUPEREMOVE_BACKEND_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/dedupe_backend.h"
#include "daemon/duperemove_output.h"
#include "daemon/duperemove_version.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {

class FileOpener;

// A file btrdupd opened for reading and checked.
struct OpenedFile {
  UniqueFd fd;
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t size = 0;
};

class DuperemoveBackend : public DedupeBackend {
 public:
  struct Options {
    // The program: a name looked up in $PATH, or a path.
    std::string binary = "duperemove";
    // Most bytes of names (each counted with its line end) in one invocation.
    uint64_t max_arg_length = 1048576;
    // Most files (the source included) in one invocation.
    int max_files_per_run = 120;
    // An invocation is killed after min_deadline plus the time to read its bytes twice
    // (the kernel compares both copies) at min_bytes_per_second.
    absl::Duration min_deadline = absl::Minutes(10);
    uint64_t min_bytes_per_second = uint64_t{4} << 20;
    // When it returns true (btrdupd is asked to stop) a running invocation is killed
    // and its destinations are tried again later (Unavailable). May be empty.
    std::function<bool()> should_stop;
  };

  // `opener` (borrowed, must outlive the backend) is where every file comes from.
  DuperemoveBackend(FileOpener* opener, Options options);

  std::string Name() const override { return "duperemove"; }
  absl::Status CheckAvailable() const override;
  absl::StatusOr<std::vector<DedupeOutcome>> Dedupe(const DedupeRequest& request) override;

  // How destinations (by inode number and length of name) are split into invocations
  // with a source of inode number `source_ino`: indices in request order, no two of
  // one inode number (nor the source's) together, at most `max_files - 1` destinations
  // and `max_bytes` of names (source included) per invocation; every invocation has at
  // least one destination. Destinations with the source's inode number are left out
  // (returned in `same_as_source`). Exposed for tests.
  struct Split {
    std::vector<std::vector<size_t>> runs;
    std::vector<size_t> same_as_source;
  };
  static Split SplitInvocations(uint64_t source_ino, uint64_t source_name_bytes,
                                const std::vector<uint64_t>& inos,
                                const std::vector<uint64_t>& name_bytes, int max_files,
                                uint64_t max_bytes);

  // The dialect of the binary as last detected (for messages and tests).
  std::optional<DuperemoveDialect> dialect() const { return dialect_; }

 private:
  struct Binary {
    std::string path;
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_ns = 0;
  };
  // Finds the binary and (re)detects its version when it changed. Errors are
  // BackendFailures.
  absl::StatusOr<DuperemoveDialect> Detect() const;
  // One invocation: `source` first or last as the dialect wants, then outcomes for
  // `dests` (indices into `files`).
  absl::StatusOr<std::vector<DedupeOutcome>> RunOnce(const DuperemoveDialect& dialect,
                                                     const std::vector<OpenedFile>& files,
                                                     const std::vector<FileNames>& names,
                                                     size_t source,
                                                     const std::vector<size_t>& dests,
                                                     uint64_t size);

  // The file `ref` opened through opener_, with what fstat says of it.
  absl::StatusOr<OpenedFile> Open(const FileRef& ref);

  FileOpener* const opener_;
  const Options options_;
  mutable std::optional<Binary> binary_;
  mutable std::optional<DuperemoveDialect> dialect_;
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_DUPEREMOVE_BACKEND_H_
