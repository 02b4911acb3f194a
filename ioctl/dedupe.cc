#include "ioctl/dedupe.h"

#include <errno.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>  // TEMP_FAILURE_RETRY

#include <algorithm>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "ioctl/errno_status.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {
namespace {

static_assert(sizeof(file_dedupe_range) +
                      kMaxDedupeTargetsPerCall * sizeof(file_dedupe_range_info) <=
                  4096,
              "one FIDEDUPERANGE argument must fit in a 4 KiB page");

// What the errno of a dedupe usually means, for the error message.
const char* Hint(int err) {
  switch (err) {
    case EINVAL:
      return "offsets must be block-aligned and the range inside both files; an unaligned "
             "tail is allowed only at EOF of both; both must be regular files and the "
             "source open for reading";
    case EPERM:
      return "the destination must be writable by the caller or the caller needs "
             "CAP_SYS_ADMIN; immutable and append-only files are refused";
    case ETXTBSY:
      return "one of the files is an active swap file";
    case EAGAIN:
      return "a btrfs send is using the destination's subvolume; retry later";
    case EROFS:
      return "the destination is on a read-only mount or filesystem";
    case EXDEV:
      return "source and destination are on different filesystems";
    case EISDIR:
      return "a directory cannot be deduped";
    case EBADF:
      return "not an open file descriptor";
    case EOPNOTSUPP:
      return "the filesystem does not support dedupe";
    default:
      return nullptr;
  }
}

std::string RangeText(uint64_t offset, uint64_t length) {
  return absl::StrCat("[", offset, ", +", length, ")");
}

absl::Status DedupeError(int err, int src_fd, uint64_t src_offset, uint64_t length,
                         const DedupeTarget& target, uint64_t target_offset) {
  std::string message =
      absl::StrCat("dedupe ", DescribeFd(src_fd), " ", RangeText(src_offset, length),
                   " into ", DescribeFd(target.fd), " at ", target_offset, ": ",
                   strerror(err));
  if (const char* hint = Hint(err)) absl::StrAppend(&message, " (", hint, ")");
  return ErrnoToStatusWithMessage(err, message);
}

// Progress of one target across calls.
struct Progress {
  uint64_t done = 0;
  bool finished = false;
};

// Issues one FIDEDUPERANGE for `batch` (indexes into targets), all of which
// have progress `done`, and records the outcome.
void DedupeBatch(int src_fd, uint64_t src_offset, uint64_t length, uint64_t done,
                 absl::Span<const DedupeTarget> targets, const std::vector<size_t>& batch,
                 std::vector<Progress>& progress, std::vector<DedupeResult>& results) {
  const uint64_t chunk = std::min(kDedupeChunkBytes, length - done);
  const size_t bytes =
      sizeof(file_dedupe_range) + batch.size() * sizeof(file_dedupe_range_info);
  // uint64_t storage keeps the structure 8-byte aligned; zeroed reserved fields.
  std::vector<uint64_t> storage((bytes + sizeof(uint64_t) - 1) / sizeof(uint64_t), 0);
  auto* args = reinterpret_cast<file_dedupe_range*>(storage.data());
  args->src_offset = src_offset + done;
  args->src_length = chunk;
  args->dest_count = static_cast<uint16_t>(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    const DedupeTarget& target = targets[batch[i]];
    args->info[i].dest_fd = target.fd;
    args->info[i].dest_offset = target.offset + done;
  }

  int rc = TEMP_FAILURE_RETRY(ioctl(src_fd, FIDEDUPERANGE, args));
  const int call_errno = rc < 0 ? errno : 0;

  for (size_t i = 0; i < batch.size(); ++i) {
    const size_t index = batch[i];
    const DedupeTarget& target = targets[index];
    Progress& p = progress[index];
    DedupeResult& result = results[index];
    const file_dedupe_range_info& info = args->info[i];
    const int err = call_errno != 0 ? call_errno : (info.status < 0 ? -info.status : 0);
    if (err != 0) {
      p.finished = true;
      result.kind = DedupeResult::Kind::kFailed;
      result.error =
          DedupeError(err, src_fd, args->src_offset, chunk, target, info.dest_offset);
    } else if (info.status == FILE_DEDUPE_RANGE_DIFFERS) {
      p.finished = true;
      result.kind = DedupeResult::Kind::kDiffers;
    } else if (info.status != FILE_DEDUPE_RANGE_SAME) {
      p.finished = true;
      result.kind = DedupeResult::Kind::kFailed;
      result.error = absl::InternalError(
          absl::StrCat("dedupe into ", DescribeFd(target.fd),
                       ": unknown FIDEDUPERANGE status ", info.status));
    } else if (info.bytes_deduped == 0 || info.bytes_deduped > chunk) {
      // CheckTarget rules out the known causes; never loop without progress.
      p.finished = true;
      result.kind = DedupeResult::Kind::kFailed;
      result.error = absl::InternalError(absl::StrCat(
          "dedupe ", DescribeFd(src_fd), " ", RangeText(args->src_offset, chunk), " into ",
          DescribeFd(target.fd), " at ", info.dest_offset, ": kernel reported ",
          info.bytes_deduped, " bytes deduped"));
    } else {
      p.done += info.bytes_deduped;
      result.bytes_deduped = p.done;
      if (p.done == length) {
        p.finished = true;
        result.kind = DedupeResult::Kind::kDeduped;
      }
    }
  }
}

// Checks what the kernel would silently shorten or refuse vaguely. Returns
// OK if the target can be passed to the kernel.
absl::Status CheckTarget(const DedupeTarget& target, uint64_t src_offset, uint64_t length,
                         uint64_t src_size, uint64_t block) {
  struct stat st;
  if (fstat(target.fd, &st) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, absl::StrCat("dedupe: stat destination ", DescribeFd(target.fd)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dedupe: destination ", DescribeFd(target.fd), " is not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (target.offset % block != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dedupe: destination offset ", target.offset, " in ", DescribeFd(target.fd),
        " is not a multiple of the block size ", block));
  }
  if (target.offset > size || length > size - target.offset) {
    return absl::OutOfRangeError(absl::StrCat(
        "dedupe: range ", RangeText(target.offset, length), " extends past the end of ",
        DescribeFd(target.fd), " (size ", size, ")"));
  }
  // The kernel would share only the whole blocks yet report the full length.
  const bool at_both_eofs = src_offset + length == src_size && target.offset + length == size;
  if (length % block != 0 && !at_both_eofs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dedupe: length ", length, " is not a multiple of the block size ", block,
        " and the range does not end at EOF of both files (source size ", src_size, ", ",
        DescribeFd(target.fd), " size ", size, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<DedupeResult>> DedupeRange(int src_fd, uint64_t src_offset,
                                                      uint64_t length,
                                                      absl::Span<const DedupeTarget> targets) {
  struct stat st;
  if (fstat(src_fd, &st) != 0) {
    const int err = errno;
    return ErrnoToStatus(err, absl::StrCat("dedupe: stat source ", DescribeFd(src_fd)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dedupe: source ", DescribeFd(src_fd), " is not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const uint64_t block = st.st_blksize > 0 ? static_cast<uint64_t>(st.st_blksize) : 4096;
  if (src_offset > size || length > size - src_offset) {
    return absl::OutOfRangeError(absl::StrCat("dedupe: range ", RangeText(src_offset, length),
                                              " extends past the end of source ",
                                              DescribeFd(src_fd), " (size ", size, ")"));
  }
  if (src_offset % block != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("dedupe: source offset ", src_offset, " in ", DescribeFd(src_fd),
                     " is not a multiple of the block size ", block));
  }

  std::vector<DedupeResult> results(targets.size());
  std::vector<Progress> progress(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    absl::Status usable = CheckTarget(targets[i], src_offset, length, size, block);
    if (!usable.ok()) {
      results[i].error = std::move(usable);
      progress[i].finished = true;
    } else if (length == 0) {
      results[i].kind = DedupeResult::Kind::kDeduped;
      progress[i].finished = true;
    }
  }

  // Each round serves the unfinished targets that are furthest behind, so
  // targets whose calls were shortened differently still share one ioctl.
  std::vector<size_t> batch;
  for (;;) {
    uint64_t min_done = std::numeric_limits<uint64_t>::max();
    for (const Progress& p : progress) {
      if (!p.finished) min_done = std::min(min_done, p.done);
    }
    if (min_done == std::numeric_limits<uint64_t>::max()) break;
    batch.clear();
    for (size_t i = 0; i < progress.size() && batch.size() < kMaxDedupeTargetsPerCall; ++i) {
      if (!progress[i].finished && progress[i].done == min_done) batch.push_back(i);
    }
    DedupeBatch(src_fd, src_offset, length, min_done, targets, batch, progress, results);
  }
  return results;
}

std::vector<std::pair<uint64_t, uint64_t>> DataRanges(int fd, uint64_t length) {
  struct stat st;
  const uint64_t block =
      fstat(fd, &st) == 0 && st.st_blksize > 0 ? static_cast<uint64_t>(st.st_blksize) : 4096;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  uint64_t at = 0;
  while (at < length) {
    const off_t data = lseek(fd, static_cast<off_t>(at), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only holes from here to the end
      return {{0, length}};       // no hole information: the whole file
    }
    if (static_cast<uint64_t>(data) >= length) break;
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return {{0, length}};
    const uint64_t start = static_cast<uint64_t>(data) / block * block;
    uint64_t end = std::min<uint64_t>(
        (static_cast<uint64_t>(hole) + block - 1) / block * block, length);
    if (!ranges.empty() && start <= ranges.back().second) {
      ranges.back().second = std::max(ranges.back().second, end);
    } else {
      ranges.emplace_back(start, end);
    }
    at = std::max<uint64_t>(end, static_cast<uint64_t>(hole));
  }
  return ranges;
}

absl::StatusOr<std::vector<DedupeResult>> DedupeFile(int src_fd, uint64_t length,
                                                     absl::Span<const int> dest_fds) {
  std::vector<DedupeTarget> targets;
  targets.reserve(dest_fds.size());
  for (int fd : dest_fds) targets.push_back(DedupeTarget{fd, 0});
  struct stat src_st;
  const bool plain_source = fstat(src_fd, &src_st) == 0 && S_ISREG(src_st.st_mode) &&
                            static_cast<uint64_t>(src_st.st_size) == length;
  const std::vector<std::pair<uint64_t, uint64_t>> ranges =
      plain_source ? DataRanges(src_fd, length)
                   : std::vector<std::pair<uint64_t, uint64_t>>{{0, length}};
  if (ranges.size() == 1 && ranges[0].first == 0 && ranges[0].second == length) {
    return DedupeRange(src_fd, 0, length, targets);  // every check and error as documented
  }
  // A sparse source: only its data ranges are shared (holes hold no extents), so a
  // 1 TiB hole is neither compared nor read. Each destination stops at its first range
  // that differs or fails; what was shared before stays shared.
  std::vector<DedupeResult> results(dest_fds.size());
  for (DedupeResult& r : results) r.kind = DedupeResult::Kind::kDeduped;
  for (const auto& [start, end] : ranges) {
    std::vector<DedupeTarget> live;
    std::vector<size_t> which;
    for (size_t i = 0; i < targets.size(); ++i) {
      if (results[i].kind != DedupeResult::Kind::kDeduped) continue;
      live.push_back(DedupeTarget{targets[i].fd, start});
      which.push_back(i);
    }
    if (live.empty()) break;
    absl::StatusOr<std::vector<DedupeResult>> part =
        DedupeRange(src_fd, start, end - start, live);
    if (!part.ok()) return part.status();
    for (size_t j = 0; j < which.size() && j < part->size(); ++j) {
      DedupeResult& r = results[which[j]];
      const uint64_t before = r.bytes_deduped;
      r = (*part)[j];
      r.bytes_deduped += before;
    }
  }
  return results;
}

}  // namespace btrdupd
