#include "daemon/native_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "ioctl/dedupe.h"
#include "ioctl/errno_status.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {
namespace {

absl::StatusOr<uint64_t> SizeOf(int fd, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) != 0) return btrdupd::ErrnoToStatus(errno, absl::StrCat("fstat ", path));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  return static_cast<uint64_t>(st.st_size);
}

}  // namespace

absl::StatusOr<std::vector<DedupeOutcome>> NativeBackend::Dedupe(const DedupeRequest& request) {
  absl::StatusOr<UniqueFd> src = opener_->OpenForRead(request.reference);
  if (!src.ok()) return src.status();
  absl::StatusOr<uint64_t> src_size = SizeOf(src->get(), request.reference_path);
  if (!src_size.ok()) return src_size.status();
  if (*src_size != request.size) {
    return absl::FailedPreconditionError(
        absl::StrCat(request.reference_path, ": is ", *src_size, " bytes now, expected ",
                     request.size, " (it changed)"));
  }

  std::vector<DedupeOutcome> outcomes(request.destinations.size());
  std::vector<UniqueFd> fds;
  std::vector<int> raw_fds;
  std::vector<size_t> which;  // outcome index of each fd
  for (size_t i = 0; i < request.destinations.size(); ++i) {
    const std::string& path = request.destinations[i].display;
    DedupeOutcome& outcome = outcomes[i];
    outcome.destination_path = path;
    absl::StatusOr<UniqueFd> fd = opener_->OpenForRead(request.destinations[i]);
    if (!fd.ok()) {
      outcome.kind = DedupeOutcome::Kind::kFailed;
      outcome.error = fd.status();
      continue;
    }
    absl::StatusOr<uint64_t> size = SizeOf(fd->get(), path);
    if (!size.ok()) {
      outcome.kind = DedupeOutcome::Kind::kFailed;
      outcome.error = size.status();
      continue;
    }
    if (*size != request.size) {
      outcome.kind = DedupeOutcome::Kind::kDiffers;  // it changed since it was hashed
      continue;
    }
    raw_fds.push_back(fd->get());
    fds.push_back(std::move(*fd));
    which.push_back(i);
  }
  if (raw_fds.empty()) return outcomes;

  absl::StatusOr<std::vector<DedupeResult>> results =
      DedupeFile(src->get(), request.size, raw_fds);
  if (!results.ok()) return results.status();
  for (size_t j = 0; j < which.size() && j < results->size(); ++j) {
    const DedupeResult& result = (*results)[j];
    DedupeOutcome& outcome = outcomes[which[j]];
    outcome.bytes_deduped = result.bytes_deduped;
    switch (result.kind) {
      case DedupeResult::Kind::kDeduped:
        outcome.kind = DedupeOutcome::Kind::kDeduped;
        break;
      case DedupeResult::Kind::kDiffers:
        outcome.kind = DedupeOutcome::Kind::kDiffers;
        break;
      case DedupeResult::Kind::kFailed:
        outcome.kind = DedupeOutcome::Kind::kFailed;
        outcome.error = result.error;
        break;
    }
  }
  return outcomes;
}

}  // namespace btrdupd
