#include "tests/testing/loop_btrfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "tests/testing/command.h"

namespace btrdupd {
namespace testing {
namespace {

constexpr int kUnmountAttempts = 5;
constexpr std::chrono::milliseconds kUnmountRetryDelay(200);

std::string TempRoot() {
  const char* dir = getenv("TEST_TMPDIR");
  return (dir != nullptr && *dir != '\0') ? dir : "/tmp";
}

absl::StatusOr<std::string> MakeTempDir() {
  std::string templ = absl::StrCat(TempRoot(), "/loop_btrfs.XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp ", templ, ": ", strerror(errno)));
  }
  return templ;
}

void Warn(absl::string_view message) {
  fprintf(stderr, "LoopBtrfs: %.*s\n", static_cast<int>(message.size()), message.data());
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoopBtrfs>> LoopBtrfs::Create(const Options& options) {
  absl::StatusOr<std::string> dir = MakeTempDir();
  if (!dir.ok()) return dir.status();
  // From here on the destructor undoes whatever FormatAndMount got done.
  std::unique_ptr<LoopBtrfs> fs(new LoopBtrfs(*std::move(dir)));
  absl::Status status = fs->FormatAndMount(options);
  if (!status.ok()) return status;
  return fs;
}

LoopBtrfs::LoopBtrfs(std::string temp_dir)
    : temp_dir_(std::move(temp_dir)),
      image_path_(temp_dir_ + "/image"),
      mount_path_(temp_dir_ + "/mnt") {}

absl::Status LoopBtrfs::FormatAndMount(const Options& options) {
  int fd = open(image_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("create image ", image_path_, ": ", strerror(errno)));
  }
  absl::Cleanup closer = [fd] { close(fd); };
  if (ftruncate(fd, static_cast<off_t>(options.size_bytes)) != 0) {
    return absl::InternalError(absl::StrCat("truncate image ", image_path_, " to ",
                                            options.size_bytes, ": ", strerror(errno)));
  }
  if (mkdir(mount_path_.c_str(), 0755) != 0) {
    return absl::InternalError(
        absl::StrCat("mkdir ", mount_path_, ": ", strerror(errno)));
  }

  std::vector<std::string> mkfs = {"mkfs.btrfs", "-q", "-f"};
  mkfs.insert(mkfs.end(), options.mkfs_args.begin(), options.mkfs_args.end());
  mkfs.push_back(image_path_);
  absl::StatusOr<std::string> formatted = RunChecked(mkfs);
  if (!formatted.ok()) return formatted.status();

  std::string mount_options = "loop";
  if (!options.mount_options.empty()) absl::StrAppend(&mount_options, ",", options.mount_options);
  absl::StatusOr<std::string> mounted =
      RunChecked({"mount", "-t", "btrfs", "-o", mount_options, image_path_, mount_path_});
  if (!mounted.ok()) {
    // A failed mount may still have set up a loop device.
    DetachLoopDevices();
    return mounted.status();
  }
  mounted_ = true;
  return absl::OkStatus();
}

LoopBtrfs::~LoopBtrfs() {
  Unmount();
  DetachLoopDevices();
  if (unlink(image_path_.c_str()) != 0 && errno != ENOENT) {
    Warn(absl::StrCat("unlink ", image_path_, ": ", strerror(errno)));
  }
  if (rmdir(mount_path_.c_str()) != 0 && errno != ENOENT) {
    Warn(absl::StrCat("rmdir ", mount_path_, ": ", strerror(errno)));
  }
  if (rmdir(temp_dir_.c_str()) != 0 && errno != ENOENT) {
    Warn(absl::StrCat("rmdir ", temp_dir_, ": ", strerror(errno)));
  }
}

std::string LoopBtrfs::Path(absl::string_view relative) const {
  return absl::StrCat(mount_path_, "/", relative);
}

void LoopBtrfs::Unmount() {
  if (!mounted_) return;
  std::string last_error;
  for (int attempt = 0; attempt < kUnmountAttempts; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(kUnmountRetryDelay);
    absl::StatusOr<std::string> result = RunChecked({"umount", mount_path_});
    if (result.ok()) {
      mounted_ = false;
      return;
    }
    last_error = std::string(result.status().message());
  }
  Warn(absl::StrCat("unmount failed (", last_error, "); detaching lazily"));
  absl::StatusOr<std::string> lazy = RunChecked({"umount", "-l", mount_path_});
  if (!lazy.ok()) {
    Warn(lazy.status().message());
    return;
  }
  mounted_ = false;
}

void LoopBtrfs::DetachLoopDevices() {
  // `mount -o loop` sets autoclear, so normally nothing is left to do.
  absl::StatusOr<std::string> listed =
      RunChecked({"losetup", "--noheadings", "--output", "NAME", "--associated", image_path_});
  if (!listed.ok()) {
    Warn(listed.status().message());
    return;
  }
  for (absl::string_view device : absl::StrSplit(*listed, '\n', absl::SkipWhitespace())) {
    absl::StatusOr<std::string> detached = RunChecked({"losetup", "-d", std::string(device)});
    if (!detached.ok()) Warn(detached.status().message());
  }
}

}  // namespace testing
}  // namespace btrdupd
