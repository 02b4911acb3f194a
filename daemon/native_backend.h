// NativeBackend: DedupeBackend (core/dedupe_backend.h) through the kernel's
// FIDEDUPERANGE (ioctl/dedupe.h), needing no helper program.
//
// The reference and every destination are opened through a FileOpener
// (daemon/file_opener.h: beneath the volume root, through no link, identity checked;
// a file that is not the one named is kFailed with Aborted), read-only (root may dedupe into a file
// it opened read-only; the kernel byte-compares both ranges under lock before sharing,
// so a file that changed is reported "differs", never corrupted). Whole files are
// shared, in chunks and in batches of destinations within the kernel's limits.
//
// Outcomes: kDeduped when the kernel shared the whole file; kDiffers when the bytes (or
// the size) differ from the reference now; kFailed with the kernel's error otherwise
// (EPERM for immutable/append-only, ETXTBSY for a swap file, EROFS for a read-only
// subvolume, EAGAIN while a send runs, EINVAL for NOCOW next to checksummed data ...).
// The request fails as a whole only if the reference cannot be opened or is not
// `request.size` bytes long any more.
//
// Thread-compatible (the FileOpener is).

#ifndef BTRDUPD_DAEMON_NATIVE_BACKEND_H_
#define BTRDUPD_DAEMON_NATIVE_BACKEND_H_

#include <string>
#include <vector>

#include "core/dedupe_backend.h"
#include "daemon/file_opener.h"

namespace btrdupd {

class NativeBackend : public DedupeBackend {
 public:
  // `opener` (borrowed; outlives this) opens the files of the volume.
  explicit NativeBackend(FileOpener* opener) : opener_(opener) {}

  std::string Name() const override { return "native"; }
  absl::Status CheckAvailable() const override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<DedupeOutcome>> Dedupe(const DedupeRequest& request) override;

 private:
  FileOpener* const opener_;
};

}  // namespace btrdupd

#endif  // BTRDUPD_DAEMON_NATIVE_BACKEND_H_
