// DedupeBackend: whatever asks the kernel to share one file's extents with another's.
//
// Two implementations: the native one (daemon/native_backend.h, FIDEDUPERANGE through
// ioctl/dedupe.h) and one that runs the duperemove binary (daemon/duperemove_backend.h).
// A backend is only trusted to *try*: the engine verifies every outcome with FIEMAP
// before it records a file as deduped, whichever backend ran.

#ifndef BTRDUPD_CORE_DEDUPE_BACKEND_H_
#define BTRDUPD_CORE_DEDUPE_BACKEND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/file_access.h"

namespace btrdupd {

// One reference file and the identical (by hash) files to share its extents.
// Files are named by identity (core/file_access.h): a backend opens each one only
// through a verified open (daemon/file_opener.h), never by its path. The paths are the
// same files' absolute paths, for messages (and for fakes). Every destination has the
// reference's size.
struct DedupeRequest {
  FileRef reference;
  std::vector<FileRef> destinations;
  std::string reference_path;                 // == reference.display
  std::vector<std::string> destination_paths;  // == destinations[i].display
  uint64_t size = 0;
};

struct DedupeOutcome {
  enum class Kind {
    kDeduped,  // the backend reports the whole range shared
    kDiffers,  // contents differ from the reference now: the file changed since hashing
    kFailed,   // refused or failed; `error` says why (EPERM, ETXTBSY, EROFS, EAGAIN, ...;
               // Aborted when the file is not the one named: see IsTreeChanged)
  };
  std::string destination_path;
  Kind kind = Kind::kFailed;
  uint64_t bytes_deduped = 0;
  absl::Status error;
};

class DedupeBackend {
 public:
  virtual ~DedupeBackend() = default;

  // "native" or "duperemove".
  virtual std::string Name() const = 0;

  // Checks the backend can run at all (e.g. the duperemove binary exists), so a missing
  // dependency is reported at start-up rather than in the middle of a run.
  virtual absl::Status CheckAvailable() const = 0;

  // Tries to share every destination with the reference. Returns one outcome per
  // destination, in request order. A non-OK status means the request as a whole could
  // not be attempted: because of the reference (it cannot be opened, it changed), or,
  // marked by BackendFailure(), because the backend itself does not work (its program
  // vanished, refuses its usage, crashed, did not keep the reference's extents). The
  // engine stops the volume's step with a BackendFailure (a volume-level error) and
  // records nothing against any file. Per-file trouble goes in the outcomes; a
  // destination that should simply be tried again later (the program was killed by a
  // signal or ran past its deadline, a send runs) fails with an Unavailable error.
  virtual absl::StatusOr<std::vector<DedupeOutcome>> Dedupe(const DedupeRequest& request) = 0;
};

// An error meaning "the backend as a whole does not work": `code` kept, marked so the
// engine can tell it from trouble with one request's reference.
absl::Status BackendFailure(absl::StatusCode code, absl::string_view message);
bool IsBackendFailure(const absl::Status& status);

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_DEDUPE_BACKEND_H_
