// `btrdupd --explain PATH...`: why a file is (not) deduped, read from its volume's database.
//
// For each PATH: the managed volume it is on (the nearest directory above it that has a
// btrdupd database, as --status finds one; --db-dir as for the other modes), then one
// short paragraph: tracked or not and why (not a regular file, on another mount, below
// min_file_size, excluded by the volume's exclude globs, not yet scanned); the size group
// (files of that size), hash state, stability wait (eligible at, backoff level) and dedupe
// state (deduped against REF on DATE, already sharing with REF (found DATE), reference of
// its group, skipped: KIND + detail, no partner, pending). A snapshot file with no row of
// its own is explained as a copy of its source, with the source's record. With -v the
// other members of its identical group; with --json one object per path and line.
// Nothing is changed and nothing is scanned; the database is opened read-only
// (VolumeIndex::OpenReadOnly), as --status opens it: never created, migrated or repaired. An unknown path, a path on no managed volume or an unreadable
// database is one line on stderr and counts as a failed path (daemon/exit_codes.h).

#ifndef BTRDUPD_DAEMON_EXPLAIN_H_
#define BTRDUPD_DAEMON_EXPLAIN_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace btrdupd {

// True when --explain was given.
bool ExplainRequested();

// Explains each path on stdout; returns the exit code (ExitCodeFor over the paths).
int RunExplain(const std::vector<std::string>& paths, absl::string_view db_dir,
               bool verbose);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_EXPLAIN_H_
