// The name that stands for one volume in file names: its database under --db-path
// (`DIR/<volumename>.btrdupd.db`) and its status socket (`<volumename>.sock`).
//
// Derived from the mount path exactly like `systemd-escape --path`: leading, trailing
// and repeated '/' dropped, '/' becomes '-', bytes outside [A-Za-z0-9:_.] (and a
// leading '.') become `\xNN`. The mapping is injective, so two different mount paths
// never share a name ("/mnt/a-b" → "mnt-a\x2db", "/mnt/a/b" → "mnt-a-b"); the root
// directory "/" becomes "-" (as systemd names it), which no other path can produce.

#ifndef BTRDUPD_DAEMON_VOLUME_NAME_H_
#define BTRDUPD_DAEMON_VOLUME_NAME_H_

#include <string>

#include "absl/strings/string_view.h"

namespace btrdupd {

// REQUIRES: `absolute_path` starts with '/'; it should be canonical (realpath), as
// "/mnt/./vol" and "/mnt/vol" get different names.
std::string VolumeNameForPath(absl::string_view absolute_path);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_VOLUME_NAME_H_
