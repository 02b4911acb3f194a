#include "daemon/run_report.h"

#include "core/skip_kind.h"
#include "daemon/status_json.h"
#include "daemon/version.h"

namespace btrdupd {

std::string OneShotJson(const std::vector<VolumeOutcome>& outcomes, bool dry_run,
                        int exit_code) {
  JsonWriter w;
  w.BeginObject();
  w.Key("version").String(kBtrdupdVersion);
  w.Key("exit_code").Int(exit_code);
  w.Key("dry_run").Bool(dry_run);
  w.Key("volumes").BeginArray();
  for (const VolumeOutcome& o : outcomes) {
    w.BeginObject();
    w.Key("volume").String(o.volume);
    w.Key("ok").Bool(o.ok);
    w.Key("error");
    if (o.error.empty()) {
      w.Null();
    } else {
      w.String(o.error);
    }
    w.Key("duration_seconds").Double(absl::ToDoubleSeconds(o.duration));
    if (o.summary.has_value()) {
      const VolumeSummary& s = *o.summary;
      w.Key("interrupted").Bool(s.stopped);
      w.Key("scan").BeginObject();
      w.Key("kind").String(ScanKindName(s.scan.kind));
      w.Key("files_seen").Int(s.scan.files_seen);
      w.Key("files_added").Int(s.scan.files_added);
      w.Key("files_changed").Int(s.scan.files_changed);
      w.Key("files_removed").Int(s.scan.files_removed);
      w.Key("errors").Int(s.scan.errors);
      w.EndObject();
      w.Key("files_hashed").Uint(s.files_hashed);
      w.Key("prefixes_read").Uint(s.prefixes_hashed);
      w.Key("hashes_copied").Uint(s.hashes_copied);
      w.Key("bytes_read").Uint(s.bytes_read);
      // A dry run reports what it would do under the same keys.
      w.Key("groups").Uint(s.batches + s.groups_planned);
      w.Key("files_deduped").Uint(s.files_deduped + s.files_planned);
      w.Key("bytes_shared").Uint(s.bytes_shared + s.bytes_saveable);
      w.Key("bytes_freed").Uint(s.bytes_freed);
      w.Key("files_already_shared").Uint(s.files_already_shared);
      w.Key("files_changed_since_hashing").Uint(s.files_changed);
      w.Key("skipped").BeginObject();
      for (SkipKind kind : kAllSkipKinds) {
        if (s.skipped.of(kind) > 0) w.Key(SkipKindName(kind)).Int(s.skipped.of(kind));
      }
      w.EndObject();
      w.Key("next_eligible").OptionalTime(s.next_eligible);
      w.Key("maintenance").Strings(s.maintenance);
    }
    if (o.metrics.has_value()) w.Key("files_waiting").Int(o.metrics->files_waiting);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return w.str();
}

}  // namespace btrdupd
