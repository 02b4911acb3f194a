// The absolute form of a path the user typed on the command line, for display and for
// matching a volume by its mount path. Not a trust decision: volumes are opened and checked
// elsewhere (daemon/volume_open.h); this only names them.

#ifndef BTRDUPD_DAEMON_ABSOLUTE_PATH_H_
#define BTRDUPD_DAEMON_ABSOLUTE_PATH_H_

#include <string>

namespace btrdupd {

// realpath(3) of `path` when it resolves; otherwise `path` itself if absolute, else
// `path` joined to the working directory (or `path` unchanged if even that fails).
std::string AbsolutePath(const std::string& path);

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_ABSOLUTE_PATH_H_
