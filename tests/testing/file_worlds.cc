#include "tests/testing/file_worlds.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "daemon/file_opener.h"
#include "daemon/native_backend.h"
#include "daemon/real_file_access.h"
#include "tests/testing/command.h"
#include "tests/testing/fake_file_access.h"
#include "tests/testing/file_refs.h"
#include "tests/testing/files.h"
#include "tests/testing/loop_btrfs.h"

namespace btrdupd {
namespace testing {
namespace {

constexpr char kFakeRoot[] = "/vol";

class FakeWorld : public FileWorld {
 public:
  FileAccess* access() override { return &fake_; }
  DedupeBackend* backend() override { return &backend_; }
  absl::Status Write(const std::string& path, const std::string& bytes) override {
    fake_.AddFile(Abs(path), bytes, ++last_ino_);
    return absl::OkStatus();
  }
  absl::Status Append(const std::string& path, const std::string& bytes) override {
    fake_.Append(Abs(path), bytes);
    return absl::OkStatus();
  }
  absl::Status Reflink(const std::string& dest, const std::string& src) override {
    fake_.AddFile(Abs(dest), "", ++last_ino_);
    fake_.ShareExtents(Abs(dest), Abs(src));
    return absl::OkStatus();
  }
  absl::Status WriteHoles(const std::string& path, uint64_t size) override {
    fake_.AddHoles(Abs(path), size, ++last_ino_);
    return absl::OkStatus();
  }
  absl::Status PreallocatePastEnd(const std::string& path) override {
    (void)path;
    return absl::OkStatus();
  }
  absl::Status SetImmutable(const std::string& path) override {
    fake_.file(Abs(path)).attrs.immutable = true;
    return absl::OkStatus();
  }
  absl::Status SetAppendOnly(const std::string& path) override {
    fake_.file(Abs(path)).attrs.append_only = true;
    return absl::OkStatus();
  }
  absl::Status WriteNocow(const std::string& path) override {
    fake_.AddFile(Abs(path), "", ++last_ino_).attrs.nocow = true;
    return absl::OkStatus();
  }
  absl::Status Remove(const std::string& path) override {
    fake_.Remove(Abs(path));
    return absl::OkStatus();
  }
  absl::Status MakeReadOnlySnapshot(const std::string& source,
                                    const std::string& snapshot) override {
    fake_.AddSubvolume(Abs(source), SubvolumeFlags());
    SubvolumeFlags ro;
    ro.read_only = true;
    fake_.AddSubvolume(Abs(snapshot), ro);
    return absl::OkStatus();
  }
  FileRef Ref(const std::string& path) override {
    FileRef ref;
    ref.subvol_id = 5;
    ref.path = path;
    ref.display = Abs(path);
    if (fake_.Exists(ref.display)) ref.ino = fake_.file(ref.display).ino;
    return ref;
  }
  SubvolumeRef Subvol(const std::string& path) override {
    SubvolumeRef ref;
    ref.path = path;
    ref.display = Abs(path);
    return ref;
  }

 private:
  static std::string Abs(const std::string& path) { return absl::StrCat(kFakeRoot, "/", path); }

  FakeFileAccess fake_;
  FakeDedupeBackend backend_{&fake_};
  uint64_t last_ino_ = 256;
};

std::string Quoted(const std::string& path) { return absl::StrCat("'", path, "'"); }

class RealWorld : public FileWorld {
 public:
  explicit RealWorld(std::unique_ptr<LoopBtrfs> fs) : fs_(std::move(fs)) {}
  absl::Status Init() {
    ASSIGN_OR_RETURN(opener_, FileOpener::Open(fs_->mount_path()));
    access_ = std::make_unique<RealFileAccess>(opener_.get());
    backend_ = std::make_unique<NativeBackend>(opener_.get());
    return absl::OkStatus();
  }
  ~RealWorld() override {
    // chattr +i/+a files could not be removed with the image otherwise; harmless if none.
    (void)RunShell(absl::StrCat("chattr -R -i -a ", Quoted(fs_->mount_path()),
                                " 2>/dev/null"));
    backend_.reset();
    access_.reset();
    opener_.reset();
  }

  FileAccess* access() override { return access_.get(); }
  DedupeBackend* backend() override { return backend_.get(); }
  absl::Status Write(const std::string& path, const std::string& bytes) override {
    return WriteFile(fs_->Path(path), bytes);
  }
  absl::Status Append(const std::string& path, const std::string& bytes) override {
    ASSIGN_OR_RETURN(std::string old, ReadFile(fs_->Path(path)));
    // Rewriting in place keeps the inode, as an append does.
    return WriteFile(fs_->Path(path), old + bytes);
  }
  absl::Status Reflink(const std::string& dest, const std::string& src) override {
    return Shell(absl::StrCat("cp --reflink=always ", Quoted(fs_->Path(src)), " ",
                              Quoted(fs_->Path(dest))));
  }
  absl::Status WriteHoles(const std::string& path, uint64_t size) override {
    return Shell(absl::StrCat("truncate -s ", size, " ", Quoted(fs_->Path(path))));
  }
  absl::Status PreallocatePastEnd(const std::string& path) override {
    ASSIGN_OR_RETURN(std::string old, ReadFile(fs_->Path(path)));
    const uint64_t start = (old.size() + 4095) / 4096 * 4096;
    return Shell(absl::StrCat("fallocate -n -o ", start, " -l 1048576 ",
                              Quoted(fs_->Path(path))));
  }
  absl::Status SetImmutable(const std::string& path) override {
    return Shell(absl::StrCat("chattr +i ", Quoted(fs_->Path(path))));
  }
  absl::Status SetAppendOnly(const std::string& path) override {
    return Shell(absl::StrCat("chattr +a ", Quoted(fs_->Path(path))));
  }
  absl::Status WriteNocow(const std::string& path) override {
    return Shell(absl::StrCat("touch ", Quoted(fs_->Path(path)), " && chattr +C ",
                              Quoted(fs_->Path(path))));
  }
  absl::Status Remove(const std::string& path) override {
    return Shell(absl::StrCat("rm -f ", Quoted(fs_->Path(path))));
  }
  absl::Status MakeReadOnlySnapshot(const std::string& source,
                                    const std::string& snapshot) override {
    return Shell(absl::StrCat("btrfs -q subvolume create ", Quoted(fs_->Path(source)),
                              " && btrfs -q subvolume snapshot -r ", Quoted(fs_->Path(source)),
                              " ", Quoted(fs_->Path(snapshot))));
  }
  FileRef Ref(const std::string& path) override { return RefFor(fs_->mount_path(), path); }
  SubvolumeRef Subvol(const std::string& path) override {
    return SubvolRefFor(fs_->mount_path(), path);
  }

 private:
  static absl::Status Shell(const std::string& command) {
    return RunShellChecked(command).status();
  }

  std::unique_ptr<LoopBtrfs> fs_;
  std::unique_ptr<FileOpener> opener_;
  std::unique_ptr<RealFileAccess> access_;
  std::unique_ptr<NativeBackend> backend_;
};

}  // namespace

std::unique_ptr<FileWorld> MakeFakeFileWorld() { return std::make_unique<FakeWorld>(); }

absl::StatusOr<std::unique_ptr<FileWorld>> MakeRealFileWorld() {
  LoopBtrfs::Options options;
  options.size_bytes = uint64_t{256} << 20;
  ASSIGN_OR_RETURN(std::unique_ptr<LoopBtrfs> fs, LoopBtrfs::Create(options));
  auto world = std::make_unique<RealWorld>(std::move(fs));
  RETURN_IF_ERROR(world->Init());
  return std::unique_ptr<FileWorld>(std::move(world));
}

}  // namespace testing
}  // namespace btrdupd
