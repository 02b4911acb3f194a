// The same small file trees arranged for a FileAccess (core/file_access.h) and a
// DedupeBackend (core/dedupe_backend.h) in two worlds: the fakes
// (tests/testing/fake_file_access.h) and the real RealFileAccess + NativeBackend on a
// fresh loopback btrfs. The contract suites (tests/file_access_contract_test.cc,
// tests/dedupe_backend_contract_test.cc) run every case in both, so the fakes are held
// to what the kernel does.
//
// Paths are relative to the volume root. Refs are built as the index would: the file's
// current inode (0 if it is gone) in the volume's top-level subvolume.
//
// Test-only; not thread-safe.

#ifndef BTRDUPD_TESTS_TESTING_FILE_WORLDS_H_
#define BTRDUPD_TESTS_TESTING_FILE_WORLDS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dedupe_backend.h"
#include "core/file_access.h"

namespace btrdupd {
namespace testing {

class FileWorld {
 public:
  virtual ~FileWorld() = default;

  // The FileAccess and DedupeBackend under test. Valid while the world lives.
  virtual FileAccess* access() = 0;
  virtual DedupeBackend* backend() = 0;

  // A new file (a new inode) holding `bytes`.
  virtual absl::Status Write(const std::string& path, const std::string& bytes) = 0;
  // Appends `bytes` to an existing file in place.
  virtual absl::Status Append(const std::string& path, const std::string& bytes) = 0;
  // `dest` becomes a reflink copy of `src` (cp --reflink=always).
  virtual absl::Status Reflink(const std::string& dest, const std::string& src) = 0;
  // A new file of `size` bytes that is only holes (truncate -s).
  virtual absl::Status WriteHoles(const std::string& path, uint64_t size) = 0;
  // Preallocates 1 MiB past the end of `path` without changing its size (fallocate -n).
  virtual absl::Status PreallocatePastEnd(const std::string& path) = 0;
  // chattr +i / +a on an existing file.
  virtual absl::Status SetImmutable(const std::string& path) = 0;
  virtual absl::Status SetAppendOnly(const std::string& path) = 0;
  // A new empty file with chattr +C (NOCOW).
  virtual absl::Status WriteNocow(const std::string& path) = 0;
  virtual absl::Status Remove(const std::string& path) = 0;
  // A subvolume `source` and a read-only snapshot of it at `snapshot`.
  virtual absl::Status MakeReadOnlySnapshot(const std::string& source,
                                            const std::string& snapshot) = 0;

  virtual FileRef Ref(const std::string& path) = 0;
  virtual SubvolumeRef Subvol(const std::string& path) = 0;
};

// FakeFileAccess. Preallocation past the end is nothing in the fake's extent model.
std::unique_ptr<FileWorld> MakeFakeFileWorld();

// RealFileAccess and NativeBackend over a new loopback btrfs (unmounted when the world is destroyed).
absl::StatusOr<std::unique_ptr<FileWorld>> MakeRealFileWorld();

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_FILE_WORLDS_H_
