#include "tests/testing/daemon_status.h"

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/status_server.h"

namespace btrdupd {
namespace testing {

JsonValue QueryDaemonStatus(const std::string& socket_path) {
  absl::StatusOr<std::string> reply =
      QueryStatusSocket(socket_path, "status", absl::Seconds(30));
  if (!reply.ok()) return JsonValue();
  absl::StatusOr<JsonValue> v = ParseJson(*reply);
  return v.ok() ? *v : JsonValue();
}

double JsonNumberAt(const JsonValue& v, absl::string_view key) {
  const JsonValue* m = v.Find(key);
  return m != nullptr && m->type == JsonValue::Type::kNumber ? m->number : -1;
}

std::string JsonStringAt(const JsonValue& v, absl::string_view key) {
  const JsonValue* m = v.Find(key);
  return m != nullptr && m->type == JsonValue::Type::kString ? m->string : "";
}

}  // namespace testing
}  // namespace btrdupd
