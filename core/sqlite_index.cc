#include "absl/status/status.h"
#include "core/index.h"

namespace btrdupd {

absl::StatusOr<std::unique_ptr<VolumeIndex>> VolumeIndex::Open(const std::string& db_path) {
  return absl::UnimplementedError("VolumeIndex::Open: not implemented yet");
}

}  // namespace btrdupd
