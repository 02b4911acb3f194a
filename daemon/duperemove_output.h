// Reading what one `duperemove --fdupes` run printed, conservatively.
//
// Every file of a run is known to duperemove by one or more names: the name btrdupd
// gave (/proc/self/fd/N) and, for releases that resolve names with realpath(3), the
// file's path. Per destination:
//   `Dedupe for file "NAME" had status (1) ...`   -> kDiffers (changed since hashing)
//   `... had status (-E) "TEXT"`                  -> kFailed, the errno E's status
//                                                   (EAGAIN: Unavailable, retry later)
//   an `Error ... NAME. Skipping.` line            -> kFailed with that line
//   not queued ("Queue entire file for dedupe: NAME") -> kFailed
//   otherwise                                      -> kDeduped, a claim the engine
//                                                   verifies with FIEMAP.
// A run whose kernel call failed as a whole ("FAILURE: Dedupe ioctl returns E") is
// reported by IoctlFailure, so the caller can treat it as the reference's trouble.

#ifndef BTRDUPD_DAEMON_DUPEREMOVE_OUTPUT_H_
#define BTRDUPD_DAEMON_DUPEREMOVE_OUTPUT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/dedupe_backend.h"

namespace btrdupd {

// The names duperemove may print for one file.
using FileNames = std::vector<std::string>;

// Outcomes of the destinations `names` (the DedupeOutcome's destination_path is left
// empty for the caller to fill) of a run that exited 0.
std::vector<DedupeOutcome> ParseDuperemoveOutcomes(const std::vector<FileNames>& names,
                                                   uint64_t size, absl::string_view output);

// Whether duperemove queued the file (it prints every file it could open).
bool DuperemoveQueued(absl::string_view output, const FileNames& names);

// The errno of "FAILURE: Dedupe ioctl returns E", if printed.
std::optional<int> DuperemoveIoctlFailure(absl::string_view output);

// The last line of `output`, at most 300 bytes, for messages.
std::string OutputTail(absl::string_view output);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_DUPEREMOVE_OUTPUT_H_
