// What a volume's index records for one path, found without changing anything (for
// `--explain`, daemon/explain.h): the file's own row, or - for a file of a snapshot that
// has no row of its own (VolumeIndex "Snapshots": unchanged since the snapshot was
// taken) - the source row that stands for it.
//
// Paths are relative to the volume root, as in the index. Only reads the index.

#ifndef BTRDUPD_DAEMON_EXPLAIN_LOOKUP_H_
#define BTRDUPD_DAEMON_EXPLAIN_LOOKUP_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/index.h"

namespace btrdupd {

// The row recorded at `path`, if any.
absl::StatusOr<std::optional<FileRecord>> FindFileByPath(VolumeIndex& index,
                                                         absl::string_view path);

// The row that stands for the row-less snapshot copy at `path`: the first row found at
// the same place in its subvolume's source (then the source's source, ...), provided
// VolumeIndex::ImpliedCopies of that row lists `path`. nullopt when `path` is in no
// linked snapshot or is not an implied copy (e.g. new in the snapshot, or changed).
absl::StatusOr<std::optional<FileRecord>> FindImpliedSource(VolumeIndex& index,
                                                            const std::string& path);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_EXPLAIN_LOOKUP_H_
