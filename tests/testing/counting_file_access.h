// CountingFileAccess: a FileAccess wrapper that counts the calls that touch a file's
// contents or extents, for tests that assert work was (not) done: reads
// (OpenForRead), extent lookups (SharesAllExtents, HasSharedExtents: FIEMAP), and stats
// and attribute reads. Everything is passed on to the wrapped FileAccess unchanged.

#ifndef BTRDUPD_TESTS_TESTING_COUNTING_FILE_ACCESS_H_
#define BTRDUPD_TESTS_TESTING_COUNTING_FILE_ACCESS_H_

#include <memory>
#include <string>
#include <vector>

#include "core/file_access.h"

namespace btrdupd {
namespace testing {

struct FileAccessCounts {
  int opens_for_read = 0;
  int fiemap_calls = 0;  // SharesAllExtents counts once, HasSharedExtents once
  int stats = 0;
  int attribute_reads = 0;
  std::vector<std::string> opened;  // paths (index form) of OpenForRead calls
};

class CountingFileAccess : public FileAccess {
 public:
  explicit CountingFileAccess(FileAccess* inner) : inner_(inner) {}

  const FileAccessCounts& counts() const { return counts_; }
  void Reset() { counts_ = FileAccessCounts(); }
  // Forgets the paths opened so far, keeping the counts (long runs).
  void ClearOpened() { counts_.opened.clear(); }

  absl::StatusOr<std::unique_ptr<SequentialFile>> OpenForRead(const FileRef& file) override {
    ++counts_.opens_for_read;
    counts_.opened.push_back(file.path);
    return inner_->OpenForRead(file);
  }
  void Prefetch(const FileRef& file, uint64_t bytes) override { inner_->Prefetch(file, bytes); }
  absl::StatusOr<FileStat> Stat(const FileRef& file) override {
    ++counts_.stats;
    return inner_->Stat(file);
  }
  absl::StatusOr<FileAttributes> GetAttributes(const FileRef& file) override {
    ++counts_.attribute_reads;
    return inner_->GetAttributes(file);
  }
  absl::StatusOr<bool> SharesAllExtents(const FileRef& a, const FileRef& b) override {
    ++counts_.fiemap_calls;
    return inner_->SharesAllExtents(a, b);
  }
  absl::StatusOr<bool> HasSharedExtents(const FileRef& file) override {
    ++counts_.fiemap_calls;
    return inner_->HasSharedExtents(file);
  }
  absl::StatusOr<SubvolumeFlags> GetSubvolumeFlags(const SubvolumeRef& subvol) override {
    return inner_->GetSubvolumeFlags(subvol);
  }
  absl::Status SetSubvolumeReadOnly(const SubvolumeRef& subvol, bool read_only) override {
    return inner_->SetSubvolumeReadOnly(subvol, read_only);
  }

 private:
  FileAccess* const inner_;
  FileAccessCounts counts_;
};

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_COUNTING_FILE_ACCESS_H_
