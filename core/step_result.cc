#include "core/step_result.h"

namespace btrdupd {

EngineCounts& EngineCounts::operator+=(const EngineCounts& o) {
  files_hashed += o.files_hashed;
  prefixes_hashed += o.prefixes_hashed;
  hashes_copied += o.hashes_copied;
  bytes_read += o.bytes_read;
  batches += o.batches;
  backend_calls += o.backend_calls;
  read_only_flips += o.read_only_flips;
  files_deduped += o.files_deduped;
  bytes_shared += o.bytes_shared;
  bytes_freed += o.bytes_freed;
  files_already_shared += o.files_already_shared;
  files_changed += o.files_changed;
  files_skipped += o.files_skipped;
  skipped += o.skipped;
  files_retry_later += o.files_retry_later;
  files_removed += o.files_removed;
  groups_planned += o.groups_planned;
  files_planned += o.files_planned;
  bytes_saveable += o.bytes_saveable;
  return *this;
}

bool StepResult::MadeProgress() const {
  switch (kind) {
    case Kind::kNothingToDo:
    case Kind::kInterrupted:
    case Kind::kBusy:
    case Kind::kIdle:
      return false;
    default:
      return true;
  }
}

}  // namespace btrdupd
