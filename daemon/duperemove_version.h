// What btrdupd must know about the installed duperemove(8) before it hands it a group.
//
// duperemove's `--fdupes` mode (whole files, no hashing) changed between releases in
// ways that decide which file keeps its extents:
//   0.11, 0.12   the FIRST file of a group is the source; `-A` opens files read-only
//                (needed to dedupe into a read-only snapshot); names are resolved with
//                realpath(3).
//   0.13         as 0.12, but `-A` is gone (files are always opened read-only).
//   0.14         `--fdupes` takes a file's size from lstat(2) of the name it is given,
//                the size of a link for /proc/self/fd/N: refused (see below).
//   0.15         the LAST file of a group is the source (its file list became a
//                stack); names are opened as given.
// Every version aborts (exit 134) on two names of one inode number in one group and
// queues at most 120 destinations per ioctl (the 121st file starts a new group with a
// new source).
//
// btrdupd hands duperemove only files it opened itself, as /proc/self/fd/N, so 0.14
// would dedupe 64 bytes of each; releases newer than 0.15 are refused until someone
// checks their order (an unknown order could make the reference a destination).
//
// ParseDuperemoveVersion reads `duperemove --version` ("duperemove v0.15.2");
// DialectFor maps a version to what btrdupd does with it, or says why it cannot.

#ifndef BTRDUPD_DAEMON_DUPEREMOVE_VERSION_H_
#define BTRDUPD_DAEMON_DUPEREMOVE_VERSION_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace btrdupd {

struct DuperemoveVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
  std::string text;  // as printed, e.g. "v0.15.2"
};

// What to pass and where to put the reference.
struct DuperemoveDialect {
  DuperemoveVersion version;
  bool reference_first = true;  // false: the reference goes last in its group
  bool read_only_flag = true;   // pass -A
};

// InvalidArgument (quoting the output) when no "vMAJOR.MINOR[.PATCH]" follows
// "duperemove".
absl::StatusOr<DuperemoveVersion> ParseDuperemoveVersion(absl::string_view output);

// FailedPrecondition naming the version, the supported ones and what to do.
absl::StatusOr<DuperemoveDialect> DialectFor(const DuperemoveVersion& version);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_DUPEREMOVE_VERSION_H_
