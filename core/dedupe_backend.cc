#include "core/dedupe_backend.h"

#include "absl/strings/cord.h"

namespace btrdupd {
namespace {

constexpr char kBackendFailurePayload[] = "btrdupd/backend-failure";

}  // namespace

absl::Status BackendFailure(absl::StatusCode code, absl::string_view message) {
  absl::Status status(code == absl::StatusCode::kOk ? absl::StatusCode::kInternal : code,
                      message);
  status.SetPayload(kBackendFailurePayload, absl::Cord("1"));
  return status;
}

bool IsBackendFailure(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kBackendFailurePayload).has_value();
}

}  // namespace btrdupd
