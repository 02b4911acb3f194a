#include "ioctl/subvolumes.h"

#include <btrfsutil.h>
#include <errno.h>
#include <linux/btrfs_tree.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ioctl/errno_status.h"
#include "ioctl/unique_fd.h"

namespace btrdupd {
namespace {

// libbtrfsutil reports an error enum and leaves errno from the failed system
// call; errno is cleared before each call so a stale value is not reported.
absl::Status UtilError(btrfs_util_error err, int saved_errno, absl::string_view what,
                       absl::string_view path) {
  absl::StatusCode code;
  switch (err) {
    case BTRFS_UTIL_ERROR_NOT_BTRFS:
    case BTRFS_UTIL_ERROR_NOT_SUBVOLUME:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    case BTRFS_UTIL_ERROR_SUBVOLUME_NOT_FOUND:
      code = absl::StatusCode::kNotFound;
      break;
    case BTRFS_UTIL_ERROR_NO_MEMORY:
      code = absl::StatusCode::kResourceExhausted;
      break;
    case BTRFS_UTIL_ERROR_INVALID_ARGUMENT:
      code = absl::StatusCode::kInvalidArgument;
      break;
    default:
      code = saved_errno != 0 ? ErrnoToStatusCode(saved_errno) : absl::StatusCode::kInternal;
      break;
  }
  std::string message = absl::StrCat(what, " ", path, ": ", btrfs_util_strerror(err));
  if (saved_errno != 0) absl::StrAppend(&message, ": ", strerror(saved_errno));
  absl::Status status(code, message);
  return saved_errno != 0 ? WithErrno(std::move(status), saved_errno) : status;
}

// "" for the nil UUID.
std::string UuidText(const uint8_t (&uuid)[16]) {
  if (std::all_of(std::begin(uuid), std::end(uuid), [](uint8_t b) { return b == 0; })) {
    return "";
  }
  std::string text;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text.push_back('-');
    absl::StrAppendFormat(&text, "%02x", uuid[i]);
  }
  return text;
}

SubvolumeInfo FromUtil(const struct btrfs_util_subvolume_info& util, std::string path) {
  SubvolumeInfo info;
  info.id = util.id;
  info.parent_id = util.parent_id;
  info.path = std::move(path);
  info.uuid = UuidText(util.uuid);
  info.parent_uuid = UuidText(util.parent_uuid);
  info.received_uuid = UuidText(util.received_uuid);
  info.generation = util.generation;
  info.created_generation = util.otransid;
  info.read_only = (util.flags & BTRFS_ROOT_SUBVOL_RDONLY) != 0;
  return info;
}

struct IteratorDeleter {
  void operator()(btrfs_util_subvolume_iterator* iter) const {
    btrfs_util_destroy_subvolume_iterator(iter);
  }
};

}  // namespace

absl::StatusOr<std::vector<SubvolumeInfo>> ListSubvolumes(absl::string_view mount_path) {
  const std::string root(mount_path);
  std::vector<SubvolumeInfo> subvolumes;

  absl::StatusOr<SubvolumeInfo> self = GetSubvolumeInfo(root);
  if (!self.ok()) return self.status();
  subvolumes.push_back(*std::move(self));

  btrfs_util_subvolume_iterator* raw_iter = nullptr;
  errno = 0;
  // top = 0: below the subvolume at `root`, paths relative to it.
  btrfs_util_error err = btrfs_util_create_subvolume_iterator(root.c_str(), 0, 0, &raw_iter);
  if (err != BTRFS_UTIL_OK) return UtilError(err, errno, "list subvolumes under", root);
  std::unique_ptr<btrfs_util_subvolume_iterator, IteratorDeleter> iter(raw_iter);

  for (;;) {
    char* raw_path = nullptr;
    struct btrfs_util_subvolume_info util;
    errno = 0;
    err = btrfs_util_subvolume_iterator_next_info(iter.get(), &raw_path, &util);
    if (err == BTRFS_UTIL_ERROR_STOP_ITERATION) break;
    if (err != BTRFS_UTIL_OK) return UtilError(err, errno, "list subvolumes under", root);
    std::unique_ptr<char, decltype(&free)> path(raw_path, &free);
    subvolumes.push_back(FromUtil(util, path.get()));
  }
  // By path: deterministic, and parents come before their children.
  std::sort(subvolumes.begin(), subvolumes.end(),
            [](const SubvolumeInfo& a, const SubvolumeInfo& b) { return a.path < b.path; });
  return subvolumes;
}

absl::StatusOr<SubvolumeInfo> GetSubvolumeInfo(absl::string_view path) {
  const std::string p(path);
  // id 0 means "the subvolume at p" and works only at a subvolume root;
  // elsewhere look the id up first (a tree search: needs CAP_SYS_ADMIN).
  uint64_t id = 0;
  errno = 0;
  btrfs_util_error err = btrfs_util_is_subvolume(p.c_str());
  if (err == BTRFS_UTIL_ERROR_NOT_SUBVOLUME) {
    errno = 0;
    err = btrfs_util_subvolume_id(p.c_str(), &id);
  }
  if (err != BTRFS_UTIL_OK) return UtilError(err, errno, "subvolume info for", p);
  struct btrfs_util_subvolume_info util;
  errno = 0;
  err = btrfs_util_subvolume_info(p.c_str(), id, &util);
  if (err != BTRFS_UTIL_OK) return UtilError(err, errno, "subvolume info for", p);
  return FromUtil(util, "");
}

absl::StatusOr<bool> IsSubvolume(absl::string_view path) {
  const std::string p(path);
  errno = 0;
  btrfs_util_error err = btrfs_util_is_subvolume(p.c_str());
  if (err == BTRFS_UTIL_OK) return true;
  if (err == BTRFS_UTIL_ERROR_NOT_SUBVOLUME) return false;
  return UtilError(err, errno, "is subvolume", p);
}

absl::StatusOr<bool> GetReadOnly(absl::string_view path) {
  const std::string p(path);
  bool read_only = false;
  errno = 0;
  btrfs_util_error err = btrfs_util_get_subvolume_read_only(p.c_str(), &read_only);
  if (err != BTRFS_UTIL_OK) return UtilError(err, errno, "get read-only flag of", p);
  return read_only;
}

absl::Status SetReadOnly(absl::string_view path, bool read_only) {
  const std::string p(path);
  errno = 0;
  btrfs_util_error err = btrfs_util_set_subvolume_read_only(p.c_str(), read_only);
  if (err != BTRFS_UTIL_OK) {
    return UtilError(err, errno, read_only ? "set read-only" : "clear read-only", p);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SubvolumeIdOfFd(int fd) {
  uint64_t id = 0;
  errno = 0;
  btrfs_util_error err = btrfs_util_subvolume_id_fd(fd, &id);
  if (err != BTRFS_UTIL_OK) return UtilError(err, errno, "subvolume id of", DescribeFd(fd));
  return id;
}

absl::StatusOr<SubvolumeInfo> GetSubvolumeInfoFd(int fd) {
  absl::StatusOr<uint64_t> id = SubvolumeIdOfFd(fd);
  if (!id.ok()) return id.status();
  struct btrfs_util_subvolume_info util;
  errno = 0;
  btrfs_util_error err = btrfs_util_subvolume_info_fd(fd, *id, &util);
  if (err != BTRFS_UTIL_OK) return UtilError(err, errno, "subvolume info for", DescribeFd(fd));
  return FromUtil(util, "");
}

absl::Status SetReadOnlyFd(int fd, bool read_only) {
  errno = 0;
  btrfs_util_error err = btrfs_util_set_subvolume_read_only_fd(fd, read_only);
  if (err != BTRFS_UTIL_OK) {
    return UtilError(err, errno, read_only ? "set read-only" : "clear read-only",
                     DescribeFd(fd));
  }
  return absl::OkStatus();
}

}  // namespace btrdupd
