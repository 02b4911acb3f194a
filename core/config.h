// VolumeConfig: the per-volume settings read from `.btrdupd.conf` at the volume root.
//
// The file is INI: `[section]` lines, `key = value` lines, blank lines and comments
// (a line whose first non-blank character is '#' or ';'; there are no trailing comments
// after a value). Whitespace around names, '=' and values, a UTF-8 byte-order mark and
// CRLF line ends are ignored. Names are case-sensitive. Keys before any section header
// belong to [DEFAULT]; a section may appear more than once.
//
//   [DEFAULT]           min_file_size, initial_wait_minutes, max_backoff_hours,
//                       dedup_snapshots, dedupe_across_owners, max_dedup_batch,
//                       large_group_threshold,
//                       dedup_batch_size, max_arg_length, vacuum_interval_days,
//                       dedup_reset_interval_days, exclude
//   [change_detection]  max_generation_gap, full_scan_hour, min_hours_between_full_scans
//
// Booleans: true/false, yes/no, on/off, 1/0 (any case). Integers: decimal, each within
// the range listed in kConfigKeys (config.cc) and shown by DefaultConfigText().
// exclude: shell globs separated by commas (whitespace around each is ignored; empty
// means none), checked by ExcludeList::Parse (core/exclude.h).
//
// Contract: nothing is silently ignored. An unknown section, an unknown key (also a
// known key in the wrong section), a key given twice, a value of the wrong type or out
// of range, or a line that is neither `[section]` nor `key = value` makes parsing fail
// with InvalidArgument: "<file>:<line>: <key> = <value>: <what is allowed>". A volume
// whose file fails to parse is refused by the caller. A missing file means defaults.

#ifndef BTRDUPD_CORE_CONFIG_H_
#define BTRDUPD_CORE_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/stability.h"

namespace btrdupd {

// The name of the file at the volume root.
inline constexpr char kConfigFileName[] = ".btrdupd.conf";

struct VolumeConfig {
  // [DEFAULT]
  uint64_t min_file_size = 8192;          // bytes; smaller files are not tracked
  int initial_wait_minutes = 5;           // wait after a file's last change
  int max_backoff_hours = 72;             // cap of the doubling wait
  bool dedup_snapshots = true;            // include same-path files of snapshots
  bool dedupe_across_owners = true;       // false: only files of one owner share extents
  int max_dedup_batch = 5;                // files per backend call, small group
  int large_group_threshold = 10;         // a group this big is "large"
  int dedup_batch_size = 50;              // files per backend call, large group
  uint64_t max_arg_length = 1048576;      // bytes of file names per duperemove run
  int vacuum_interval_days = 30;          // VACUUM the database this often
  int dedup_reset_interval_days = 30;     // forget dedupe states (keep hashes) this often
  std::vector<std::string> exclude;       // globs of paths never indexed (core/exclude.h)
  // [change_detection]
  uint64_t max_generation_gap = 10000;    // larger gap: schedule a full scan
  int full_scan_hour = 2;                 // local hour (0-23) for scheduled full scans
  int min_hours_between_full_scans = 24;  // except first run and --force-rescan
};

// Parses the text of a config file; `file_name` only appears in error messages.
absl::StatusOr<VolumeConfig> ParseVolumeConfig(absl::string_view text,
                                               absl::string_view file_name);

// Reads `<volume_root>/.btrdupd.conf`. Missing file: all defaults. The file is trusted
// only as a regular file owned by root (or the running user) and not writable by group
// or others; a symlink is not followed, a FIFO or device is never opened
// (ioctl/trusted_file.h): anything else is FailedPrecondition saying how to fix it. A
// file that cannot be read (permissions, I/O error, over 1 MiB): an error naming it and
// the errno text (PermissionDenied / FailedPrecondition).
absl::StatusOr<VolumeConfig> LoadVolumeConfig(const std::string& volume_root);

// The reference configuration: every section and key with its default value and a
// one-line comment (with the allowed range). Parses back to VolumeConfig{}.
std::string DefaultConfigText();

StabilityPolicy ToStabilityPolicy(const VolumeConfig& config);

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_CONFIG_H_
