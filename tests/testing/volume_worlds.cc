#include "tests/testing/volume_worlds.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "daemon/real_volume_fs.h"
#include "ioctl/errno_status.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/command.h"
#include "tests/testing/fake_volume_fs.h"
#include "tests/testing/files.h"
#include "tests/testing/loop_btrfs.h"

namespace btrdupd {
namespace testing {
namespace {

class FakeWorld : public VolumeWorld {
 public:
  VolumeFs* fs() override { return &fake_; }
  absl::Status WriteFile(const std::string& path, uint64_t size) override {
    fake_.WriteFile(path, size);
    return absl::OkStatus();
  }
  absl::Status MakeDir(const std::string& path) override {
    fake_.MakeDir(path);
    return absl::OkStatus();
  }
  absl::Status Symlink(const std::string& path) override {
    fake_.Symlink(path);
    return absl::OkStatus();
  }
  absl::Status MakeFifo(const std::string& path) override {
    fake_.MakeFifo(path);
    return absl::OkStatus();
  }
  absl::Status HardLink(const std::string& existing, const std::string& path) override {
    fake_.HardLink(existing, path);
    return absl::OkStatus();
  }
  absl::Status Remove(const std::string& path) override {
    fake_.Remove(path);
    return absl::OkStatus();
  }
  absl::Status Rename(const std::string& from, const std::string& to) override {
    fake_.Rename(from, to);
    return absl::OkStatus();
  }
  absl::Status TouchMetadata(const std::string& path) override {
    fake_.TouchMetadata(path);
    return absl::OkStatus();
  }
  absl::Status CreateSubvolume(const std::string& path) override {
    fake_.CreateSubvolume(path);
    return absl::OkStatus();
  }
  absl::Status Snapshot(const std::string& source, const std::string& path,
                        bool read_only) override {
    fake_.Snapshot(source, path, read_only);
    return absl::OkStatus();
  }
  absl::Status DeleteSubvolume(const std::string& path) override {
    fake_.DeleteSubvolume(path);
    return absl::OkStatus();
  }
  absl::Status MountForeign(const std::string& path) override {
    fake_.MountForeign(path);
    return absl::OkStatus();
  }
  absl::Status Commit() override { return absl::OkStatus(); }

 private:
  FakeVolumeFs fake_;
};

class RealWorld : public VolumeWorld {
 public:
  explicit RealWorld(std::unique_ptr<LoopBtrfs> loop) : loop_(std::move(loop)) {}
  absl::Status Init() {
    ASSIGN_OR_RETURN(fs_, RealVolumeFs::Open(loop_->mount_path()));
    return absl::OkStatus();
  }
  ~RealWorld() override {
    fs_.reset();  // its root descriptor would keep the volume busy
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) {
      (void)RunChecked({"umount", *it});
    }
  }

  VolumeFs* fs() override { return fs_.get(); }
  absl::Status WriteFile(const std::string& path, uint64_t size) override {
    const std::string abs = loop_->Path(path);
    ASSIGN_OR_RETURN(UniqueFd fd, OpenPath(abs, O_WRONLY | O_CREAT, 0644));
    const std::string bytes = PatternBytes(size, size);
    if (pwrite(fd.get(), bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(size)) {
      return ErrnoToStatus(errno, absl::StrCat("write ", abs));
    }
    if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("ftruncate ", abs));
    }
    return absl::OkStatus();
  }
  absl::Status MakeDir(const std::string& path) override {
    return Check(mkdir(loop_->Path(path).c_str(), 0755), "mkdir", path);
  }
  absl::Status Symlink(const std::string& path) override {
    return Check(symlink("target", loop_->Path(path).c_str()), "symlink", path);
  }
  absl::Status MakeFifo(const std::string& path) override {
    return Check(mkfifo(loop_->Path(path).c_str(), 0600), "mkfifo", path);
  }
  absl::Status HardLink(const std::string& existing, const std::string& path) override {
    return Check(link(loop_->Path(existing).c_str(), loop_->Path(path).c_str()), "link", path);
  }
  absl::Status Remove(const std::string& path) override {
    return RunChecked({"rm", "-rf", "--", loop_->Path(path)}).status();
  }
  absl::Status Rename(const std::string& from, const std::string& to) override {
    return Check(rename(loop_->Path(from).c_str(), loop_->Path(to).c_str()), "rename", from);
  }
  absl::Status TouchMetadata(const std::string& path) override {
    struct stat st;
    const std::string abs = loop_->Path(path);
    RETURN_IF_ERROR(Check(lstat(abs.c_str(), &st), "lstat", path));
    return Check(chmod(abs.c_str(), (st.st_mode & 07777) ^ 0100), "chmod", path);
  }
  absl::Status CreateSubvolume(const std::string& path) override {
    return RunChecked({"btrfs", "-q", "subvolume", "create", loop_->Path(path)}).status();
  }
  absl::Status Snapshot(const std::string& source, const std::string& path,
                        bool read_only) override {
    std::vector<std::string> argv = {"btrfs", "-q", "subvolume", "snapshot"};
    if (read_only) argv.push_back("-r");
    argv.push_back(loop_->Path(source));
    argv.push_back(loop_->Path(path));
    return RunChecked(argv).status();
  }
  absl::Status DeleteSubvolume(const std::string& path) override {
    return RunChecked({"btrfs", "-q", "subvolume", "delete", loop_->Path(path)}).status();
  }
  absl::Status MountForeign(const std::string& path) override {
    const std::string abs = loop_->Path(path);
    RETURN_IF_ERROR(RunChecked({"mount", "-t", "tmpfs", "tmpfs", abs}).status());
    mounts_.push_back(abs);
    return absl::OkStatus();
  }
  absl::Status Commit() override {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenPath(loop_->mount_path(), O_RDONLY | O_DIRECTORY));
    return Check(syncfs(fd.get()), "syncfs", "");
  }

 private:
  static absl::Status Check(int rc, const char* what, const std::string& path) {
    if (rc == 0) return absl::OkStatus();
    return ErrnoToStatus(errno, absl::StrCat(what, " ", path));
  }

  std::unique_ptr<LoopBtrfs> loop_;
  std::unique_ptr<RealVolumeFs> fs_;
  std::vector<std::string> mounts_;
};

}  // namespace

std::unique_ptr<VolumeWorld> MakeFakeVolumeWorld() { return std::make_unique<FakeWorld>(); }

absl::StatusOr<std::unique_ptr<VolumeWorld>> MakeRealVolumeWorld() {
  LoopBtrfs::Options options;
  options.size_bytes = uint64_t{256} << 20;
  ASSIGN_OR_RETURN(std::unique_ptr<LoopBtrfs> loop, LoopBtrfs::Create(options));
  auto world = std::make_unique<RealWorld>(std::move(loop));
  RETURN_IF_ERROR(world->Init());
  return std::unique_ptr<VolumeWorld>(std::move(world));
}

}  // namespace testing
}  // namespace btrdupd
