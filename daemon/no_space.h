// NoSpaceAdvice: what to tell the user when a volume's work failed for want of space
// (ResourceExhausted: SQLite's "database or disk is full", ENOSPC from a dedupe).
//
// Two filesystems can be the full one: the volume's own (a dedupe needs metadata space;
// the database is there by default) and the one holding the database when --db-dir
// puts it elsewhere. statvfs says which has no space available; the advice names it
// (both, when neither looks full: then metadata space ran out) and says what to do.
// Every write of a volume's work is one transaction that a failure rolls back, so the
// advice can promise that nothing half-done was recorded.
//
// Thread-safe (no state).

#ifndef BTRDUPD_DAEMON_NO_SPACE_H_
#define BTRDUPD_DAEMON_NO_SPACE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace btrdupd {

// `volume_path`: the volume's mount path; `db_path`: its database file ("" when not
// known). A sentence without a trailing period.
std::string NoSpaceAdvice(absl::string_view volume_path, absl::string_view db_path);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_NO_SPACE_H_
