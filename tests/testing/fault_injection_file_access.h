// FaultInjectionFileAccess: a FileAccess that wraps another one (fake or real) and makes
// chosen calls fail with a chosen errno, the way a failing disk or a racing user would
// (the idea of RocksDB's FaultInjectionTestFS).
//
//   FaultInjectionFileAccess faulty(&real_or_fake);
//   Fault fault;
//   fault.op = FileOp::kRead;
//   fault.path = "dir/a";  // fault.err = EIO by default
//   faulty.Inject(fault);   // the first Read() of dir/a through &faulty answers EIO
//
// A fault matches a call by its operation and the index path of the file (FileRef.path;
// SubvolumeRef.path for the subvolume calls; either file of SharesAllExtents); an empty
// path matches every file. It skips the first `skip` matching calls, then fails the next
// `times` (-1: every one from then on). A failed call does not reach the wrapped
// FileAccess (except Read(), which fails before reading). Errors are made by
// ioctl/errno_status.h (ErrnoOf() gives the errno). Calls that match no armed fault go
// through unchanged. Prefetch() is a hint and never fails.
//
// Header-only; not thread-safe.

#ifndef BTRDUPD_TESTS_TESTING_FAULT_INJECTION_FILE_ACCESS_H_
#define BTRDUPD_TESTS_TESTING_FAULT_INJECTION_FILE_ACCESS_H_

#include <errno.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/file_access.h"
#include "ioctl/errno_status.h"

namespace btrdupd {
namespace testing {

enum class FileOp {
  kOpen,                  // FileAccess::OpenForRead
  kRead,                  // SequentialFile::Read
  kOpenFileStat,          // SequentialFile::Stat
  kStat,                  // FileAccess::Stat
  kGetAttributes,
  kSharesAllExtents,
  kHasSharedExtents,
  kGetSubvolumeFlags,
  kSetSubvolumeReadOnly,
};

struct Fault {
  FileOp op = FileOp::kRead;
  std::string path;  // index path (FileRef.path / SubvolumeRef.path); "" = any
  int err = EIO;
  int skip = 0;      // matching calls let through first
  int times = 1;     // calls failed after those; -1 = all
};

class FaultInjectionFileAccess : public FileAccess {
 public:
  // `base` (borrowed) answers every call that is not failed.
  explicit FaultInjectionFileAccess(FileAccess* base) : base_(base) {}

  void Inject(Fault fault) { faults_.push_back(Armed{std::move(fault), 0}); }
  // Disarms every fault.
  void Clear() { faults_.clear(); }
  // How many calls were failed so far.
  int injected() const { return injected_; }

  absl::StatusOr<std::unique_ptr<SequentialFile>> OpenForRead(const FileRef& file) override {
    if (absl::Status s = Hit(FileOp::kOpen, file.path, file.display); !s.ok()) return s;
    absl::StatusOr<std::unique_ptr<SequentialFile>> opened = base_->OpenForRead(file);
    if (!opened.ok()) return opened.status();
    return std::unique_ptr<SequentialFile>(new Reader(this, file, std::move(*opened)));
  }
  void Prefetch(const FileRef& file, uint64_t bytes) override { base_->Prefetch(file, bytes); }
  absl::StatusOr<FileStat> Stat(const FileRef& file) override {
    if (absl::Status s = Hit(FileOp::kStat, file.path, file.display); !s.ok()) return s;
    return base_->Stat(file);
  }
  absl::StatusOr<FileAttributes> GetAttributes(const FileRef& file) override {
    if (absl::Status s = Hit(FileOp::kGetAttributes, file.path, file.display); !s.ok()) {
      return s;
    }
    return base_->GetAttributes(file);
  }
  absl::StatusOr<bool> SharesAllExtents(const FileRef& a, const FileRef& b) override {
    if (absl::Status s = Hit(FileOp::kSharesAllExtents, a.path, a.display); !s.ok()) return s;
    if (absl::Status s = Hit(FileOp::kSharesAllExtents, b.path, b.display); !s.ok()) return s;
    return base_->SharesAllExtents(a, b);
  }
  absl::StatusOr<bool> HasSharedExtents(const FileRef& file) override {
    if (absl::Status s = Hit(FileOp::kHasSharedExtents, file.path, file.display); !s.ok()) {
      return s;
    }
    return base_->HasSharedExtents(file);
  }
  absl::StatusOr<SubvolumeFlags> GetSubvolumeFlags(const SubvolumeRef& subvol) override {
    if (absl::Status s = Hit(FileOp::kGetSubvolumeFlags, subvol.path, subvol.display);
        !s.ok()) {
      return s;
    }
    return base_->GetSubvolumeFlags(subvol);
  }
  absl::Status SetSubvolumeReadOnly(const SubvolumeRef& subvol, bool read_only) override {
    if (absl::Status s = Hit(FileOp::kSetSubvolumeReadOnly, subvol.path, subvol.display);
        !s.ok()) {
      return s;
    }
    return base_->SetSubvolumeReadOnly(subvol, read_only);
  }

 private:
  struct Armed {
    Fault fault;
    int seen = 0;  // matching calls so far
  };

  // The injected error if an armed fault takes this call, else OK.
  absl::Status Hit(FileOp op, const std::string& path, const std::string& display) {
    for (Armed& armed : faults_) {
      const Fault& f = armed.fault;
      if (f.op != op || (!f.path.empty() && f.path != path)) continue;
      const int n = armed.seen++;
      if (n < f.skip || (f.times >= 0 && n >= f.skip + f.times)) continue;
      ++injected_;
      return btrdupd::ErrnoToStatus(f.err, absl::StrCat("injected fault on ", display));
    }
    return absl::OkStatus();
  }

  class Reader : public SequentialFile {
   public:
    Reader(FaultInjectionFileAccess* owner, FileRef file, std::unique_ptr<SequentialFile> base)
        : owner_(owner), file_(std::move(file)), base_(std::move(base)) {}
    absl::StatusOr<FileStat> Stat() override {
      if (absl::Status s = owner_->Hit(FileOp::kOpenFileStat, file_.path, file_.display);
          !s.ok()) {
        return s;
      }
      return base_->Stat();
    }
    absl::StatusOr<size_t> Read(char* buf, size_t n) override {
      if (absl::Status s = owner_->Hit(FileOp::kRead, file_.path, file_.display); !s.ok()) {
        return s;
      }
      return base_->Read(buf, n);
    }

   private:
    FaultInjectionFileAccess* owner_;
    FileRef file_;
    std::unique_ptr<SequentialFile> base_;
  };

  FileAccess* base_;
  std::vector<Armed> faults_;
  int injected_ = 0;
};

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_FAULT_INJECTION_FILE_ACCESS_H_
