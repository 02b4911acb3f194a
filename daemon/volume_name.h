// The name that stands for one volume in file names: its database under --db-dir
// (`DIR/<volumename>.btrdupd.db`) and its status socket (`<volumename>.sock`).
//
// Derived from the mount path like `systemd-escape --path`: leading, trailing and
// repeated '/' dropped, '/' becomes '-', bytes outside [A-Za-z0-9:_.] (and a leading
// '.') become `\xNN`. The mapping is injective, so two different mount paths never
// share a name ("/mnt/a-b" → "mnt-a\x2db", "/mnt/a/b" → "mnt-a-b"); the root directory
// "/" becomes "-" (as systemd names it), which no other path can produce.
//
// A name always fits where it is used, however long the mount path and however many
// of its bytes are escaped (each non-ASCII byte takes four): a name longer than
// kMaxVolumeNameBytes keeps a readable prefix and ends in `~` and 16 hex digits of the
// SHA-256 of the whole name (ShortenName). An escaped name never holds '~' (it is
// `\x7e`), so a shortened name never equals a full one, and two shortened names are
// equal only if their hashes collide.

#ifndef BTRDUPD_DAEMON_VOLUME_NAME_H_
#define BTRDUPD_DAEMON_VOLUME_NAME_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace btrdupd {

// Room for `<name>.btrdupd.db.corrupt-<time>-journal` (44 bytes more) within a file
// name's 255 bytes.
inline constexpr size_t kMaxVolumeNameBytes = 200;

// The shortest name ShortenName makes: '~' and the 16 hex digits.
inline constexpr size_t kMinShortNameBytes = 17;

// REQUIRES: `absolute_path` starts with '/'; it should be canonical (realpath), as
// "/mnt/./vol" and "/mnt/vol" get different names. At most kMaxVolumeNameBytes long.
std::string VolumeNameForPath(absl::string_view absolute_path);

// `name` itself when it has at most `max_bytes` bytes; else its longest prefix that does
// not cut a `\xNN` escape, then '~' and 16 hex digits of SHA-256(name), `max_bytes` in
// all (or fewer when the cut falls before an escape).
// REQUIRES: max_bytes >= kMinShortNameBytes.
std::string ShortenName(absl::string_view name, size_t max_bytes);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_VOLUME_NAME_H_
