#include "daemon/daemon_status_client.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/absolute_path.h"
#include "daemon/exit_codes.h"
#include "daemon/progress.h"
#include "daemon/status_server.h"
#include "daemon/volume_name.h"
#include "ioctl/errno_status.h"

ABSL_DECLARE_FLAG(std::string, socket_dir);
ABSL_FLAG(bool, daemon_status, false,
          "Ask the running daemon about each VOLUME (activity, queues, rates, bytes\n"
          "deduped, errors, schedules) through its status socket and print it.");
ABSL_DECLARE_FLAG(bool, json);  // daemon/status_report.cc

namespace btrdupd {
namespace {

std::string Str(const JsonValue& reply, absl::string_view key) {
  const JsonValue* v = reply.Find(key);
  if (v == nullptr) return "?";
  switch (v->type) {
    case JsonValue::Type::kString: return v->string;
    case JsonValue::Type::kNull: return "-";
    case JsonValue::Type::kBool: return v->boolean ? "yes" : "no";
    case JsonValue::Type::kNumber: return absl::StrFormat("%.0f", v->number);
    default: return "?";
  }
}

double Num(const JsonValue* v) {
  return v != nullptr && v->type == JsonValue::Type::kNumber ? v->number : 0;
}

// Rates arrive as JSON numbers; whole bytes are precise enough to print.
std::string Bytes(double b) { return HumanBytes(b > 0 ? static_cast<uint64_t>(b) : 0); }

std::string Time(const JsonValue& reply, absl::string_view key) {
  const JsonValue* v = reply.Find(key);
  if (v == nullptr || v->type != JsonValue::Type::kString) return "never";
  return v->string;
}

}  // namespace

bool DaemonStatusRequested() { return absl::GetFlag(FLAGS_daemon_status); }

absl::StatusOr<std::string> FormatStatusForPeople(const JsonValue& reply) {
  if (reply.type != JsonValue::Type::kObject) {
    return absl::InvalidArgumentError("the daemon's reply is not a JSON object");
  }
  if (const JsonValue* error = reply.Find("error"); error != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("the daemon answered: ", error->string));
  }
  const JsonValue* queues = reply.Find("queues");
  const JsonValue* rate = reply.Find("rate");
  const JsonValue* minute = rate != nullptr ? rate->Find("last_minute") : nullptr;
  const JsonValue* overall = rate != nullptr ? rate->Find("since_start") : nullptr;
  std::string out;
  absl::StrAppendFormat(&out, "%s  (btrdupd %s, pid %s, up %s s)\n", Str(reply, "volume"),
                        Str(reply, "version"), Str(reply, "pid"),
                        Str(reply, "uptime_seconds"));
  absl::StrAppendFormat(&out, "  state:            %s: %s\n", Str(reply, "state"),
                        Str(reply, "activity"));
  if (queues != nullptr) {
    absl::StrAppendFormat(
        &out, "  queues:           %s to hash, %s to dedupe, %s waiting%s\n",
        Str(*queues, "files_to_hash"), Str(*queues, "files_to_dedupe"),
        Str(*queues, "files_waiting"),
        queues->Find("scan_pending") != nullptr && queues->Find("scan_pending")->boolean
            ? ", change check due"
            : "");
  }
  absl::StrAppendFormat(&out, "  files:            %s tracked, %s duplicate groups\n",
                        Str(reply, "files_tracked"), Str(reply, "duplicate_groups"));
  if (minute != nullptr && overall != nullptr) {
    absl::StrAppendFormat(
        &out, "  rate:             %.1f files/s, %s/s (last minute); %.1f files/s, %s/s "
              "(since start)\n",
        Num(minute->Find("files_per_second")), Bytes(Num(minute->Find("bytes_per_second"))),
        Num(overall->Find("files_per_second")),
        Bytes(Num(overall->Find("bytes_per_second"))));
  }
  absl::StrAppendFormat(&out,
                        "  deduped:          %s files, %s shared, %s freed; %s more saveable\n",
                        Str(reply, "files_deduped"), Bytes(Num(reply.Find("bytes_shared"))),
                        Bytes(Num(reply.Find("bytes_freed"))),
                        Bytes(Num(reply.Find("bytes_saveable"))));
  std::string skipped;
  if (const JsonValue* k = reply.Find("skipped_by_kind"); k != nullptr) {
    for (const auto& [kind, count] : k->object) {
      absl::StrAppendFormat(&skipped, "%s%s %.0f", skipped.empty() ? "" : ", ", kind,
                            count.number);
    }
  }
  absl::StrAppendFormat(&out, "  skipped:          %s files%s\n", Str(reply, "files_skipped"),
                        skipped.empty() ? "" : absl::StrCat(" (", skipped, ")"));
  std::string errors;
  if (const JsonValue* e = reply.Find("errors"); e != nullptr) {
    for (const auto& [kind, count] : e->object) {
      absl::StrAppendFormat(&errors, "%s%s %s", errors.empty() ? "" : ", ", kind,
                            absl::StrFormat("%.0f", count.number));
    }
  }
  absl::StrAppendFormat(&out, "  errors:           %s\n", errors.empty() ? "none" : errors);
  if (std::string last = Str(reply, "last_error"); !last.empty() && last != "?") {
    absl::StrAppendFormat(&out, "  last error:       %s\n", last);
  }
  absl::StrAppendFormat(&out, "  scans:            last full %s, last incremental %s\n",
                        Time(reply, "last_full_scan"), Time(reply, "last_incremental_scan"));
  absl::StrAppendFormat(&out, "  next:             full scan %s, change check %s\n",
                        Time(reply, "next_full_scan"), Time(reply, "next_change_check"));
  absl::StrAppendFormat(&out, "  maintenance:      vacuum %s (next %s), dedupe reset %s (next %s)\n",
                        Time(reply, "last_vacuum"), Time(reply, "next_vacuum"),
                        Time(reply, "last_dedupe_reset"), Time(reply, "next_dedupe_reset"));
  absl::StrAppendFormat(&out, "  database:         %s\n",
                        Bytes(Num(reply.Find("database_bytes"))));
  return out;
}

int RunDaemonStatus(const std::vector<std::string>& volumes) {
  const bool json = absl::GetFlag(FLAGS_json);
  std::string socket_dir = absl::GetFlag(FLAGS_socket_dir);
  int failed = 0;
  for (const std::string& volume : volumes) {
    const std::string path = AbsolutePath(volume);
    const std::string socket = SocketPathFor(socket_dir, VolumeNameForPath(path));
    absl::StatusOr<std::string> reply =
        QueryStatusSocket(socket, "status", absl::Seconds(30));
    if (!reply.ok()) {
      ++failed;
      if (absl::IsNotFound(reply.status()) || absl::IsUnavailable(reply.status()) ||
          ErrnoOf(reply.status()) == ECONNREFUSED) {
        std::fprintf(stderr,
                     "btrdupd: no btrdupd daemon is running for %s (nothing answers on "
                     "%s); start it with 'btrdupd --daemon %s' or 'systemctl start "
                     "btrdupd'\n",
                     path.c_str(), socket.c_str(), path.c_str());
      } else {
        std::fprintf(stderr, "btrdupd: %s: %s\n", path.c_str(),
                     std::string(reply.status().message()).c_str());
      }
      continue;
    }
    if (json) {
      std::printf("%s\n", reply->c_str());
      continue;
    }
    absl::StatusOr<JsonValue> parsed = ParseJson(*reply);
    absl::StatusOr<std::string> text =
        parsed.ok() ? FormatStatusForPeople(*parsed) : parsed.status();
    if (!text.ok()) {
      ++failed;
      std::fprintf(stderr, "btrdupd: %s: %s\n", path.c_str(),
                   std::string(text.status().message()).c_str());
      continue;
    }
    std::fputs(text->c_str(), stdout);
  }
  std::fflush(stdout);
  return ExitCodeFor(static_cast<int>(volumes.size()), failed);
}

}  // namespace btrdupd
