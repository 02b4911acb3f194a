// ReadAheadPool (one-shot --jobs): threads read hinted files into the page cache; a
// dropped hint leaves nothing cached; RealFileAccess with read-ahead threads drops every
// hint nobody read when it goes away. On a real loopback btrfs.

#include "daemon/read_ahead_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/hash_stream.h"
#include "core/sha256.h"
#include "daemon/real_file_access.h"
#include "gtest/gtest.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "daemon/file_opener.h"
#include "tests/testing/file_refs.h"
#include "tests/testing/files.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::BtrfsTest;
using ::btrdupd::testing::ResidentPages;
using ::btrdupd::testing::WritePatternFile;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kFileSize = 3 * kMiB;

class ReadAheadPoolTest : public BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    for (const char* name : {"a", "b"}) {
      ASSERT_TRUE(WritePatternFile(Path(name), kFileSize, name[0]).ok());
      const int fd = open(Path(name).c_str(), O_RDONLY | O_CLOEXEC);
      ASSERT_GE(fd, 0);
      fdatasync(fd);
      posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      close(fd);
      ASSERT_EQ(Resident(name), 0u) << name;
    }
  }
  size_t Resident(const char* name) { return ResidentPages(Path(name), kFileSize); }
  UniqueFd Open(const char* name) {
    absl::StatusOr<UniqueFd> fd = OpenPath(Path(name), O_RDONLY | O_NOFOLLOW);
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? *std::move(fd) : UniqueFd();
  }
  FileRef Ref(const char* name) { return testing::RefFor(mount_path(), name); }
  FileOpener& opener() {
    if (opener_ == nullptr) {
      absl::StatusOr<std::unique_ptr<FileOpener>> opened = FileOpener::Open(mount_path());
      EXPECT_TRUE(opened.ok()) << opened.status();
      opener_ = *std::move(opened);
    }
    return *opener_;
  }
  std::unique_ptr<FileOpener> opener_;
};

TEST_F(ReadAheadPoolTest, ThreadsReadTheHintedBytesIntoTheCache) {
  ReadAheadPool pool(2);
  std::shared_ptr<ReadAheadPool::Ticket> a = pool.Submit(Open("a"), kFileSize);
  std::shared_ptr<ReadAheadPool::Ticket> b = pool.Submit(Open("b"), kMiB);
  pool.Drain();

  EXPECT_EQ(pool.reads_done(), 2);
  EXPECT_EQ(Resident("a"), kFileSize / 4096);
  EXPECT_GE(Resident("b"), kMiB / 4096);  // the kernel may read ahead more
  pool.Take(a);  // the caller reads it now: stays cached
  EXPECT_EQ(Resident("a"), kFileSize / 4096);
  EXPECT_TRUE(pool.Drop(b));  // read already: the caller drops its pages
}

TEST_F(ReadAheadPoolTest, RealFileAccessDropsEveryUnreadHintWhenItGoesAway) {
  {
    RealFileAccess files(&opener(), 8 * kMiB, /*read_ahead_threads=*/2);
    files.Prefetch(Ref("a"), kFileSize);
    files.Prefetch(Ref("b"), kFileSize);
  }
  EXPECT_EQ(Resident("a"), 0u);
  EXPECT_EQ(Resident("b"), 0u);
}

TEST_F(ReadAheadPoolTest, HintedFileReadThroughRealFileAccessHashesTheSameBytes) {
  RealFileAccess files(&opener(), 8 * kMiB, /*read_ahead_threads=*/2);
  files.Prefetch(Ref("a"), kFileSize);
  absl::StatusOr<std::unique_ptr<SequentialFile>> file = files.OpenForRead(Ref("a"));
  ASSERT_TRUE(file.ok()) << file.status();
  std::string all;
  std::string buf(kMiB, '\0');
  while (true) {
    absl::StatusOr<size_t> got = (*file)->Read(buf.data(), buf.size());
    ASSERT_TRUE(got.ok()) << got.status();
    if (*got == 0) break;
    all.append(buf.data(), *got);
  }
  EXPECT_EQ(all, ::btrdupd::testing::PatternBytes(kFileSize, 'a'));
}

// The digests of a file its first bytes were hashed for on a pool thread.
std::string FullDigestOf(HashStream& stream) {
  std::string buf(kMiB, '\0');
  absl::StatusOr<bool> more =
      stream.ReadTo(kFileSize, absl::Span<char>(buf.data(), buf.size()), nullptr);
  EXPECT_TRUE(more.ok()) << more.status();
  absl::StatusOr<std::string> digest = stream.FullDigest();
  EXPECT_TRUE(digest.ok()) << digest.status();
  return digest.ok() ? *digest : "";
}

// A file digest: the start of the SHA-256 of the bytes (a file without holes).
std::string FileDigestOf(const std::string& bytes) {
  absl::StatusOr<Sha256> sha = Sha256::Create();
  EXPECT_TRUE(sha.ok());
  EXPECT_TRUE(sha->Update(bytes).ok());
  absl::StatusOr<std::string> digest = sha->Finish();
  return digest.ok() ? digest->substr(0, kFileDigestBytes) : "";
}

TEST_F(ReadAheadPoolTest, AThreadHashesTheFirstBytesOfAStreamAndTheCallerGoesOn) {
  ReadAheadPool pool(1);
  absl::StatusOr<std::unique_ptr<SequentialFile>> file =
      RealFileAccess(&opener()).OpenForRead(Ref("a"));
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<FileStat> opened = (*file)->Stat();
  ASSERT_TRUE(opened.ok());
  absl::StatusOr<HashStream> stream = HashStream::Start(*std::move(file), *opened, 64 << 10);
  ASSERT_TRUE(stream.ok());
  std::shared_ptr<ReadAheadPool::Ticket> ticket =
      pool.SubmitStream(std::make_unique<HashStream>(*std::move(stream)), kMiB);
  pool.Drain();
  std::unique_ptr<HashStream> back = pool.TakeStream(ticket);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->offset(), kMiB);  // read (and hashed) on the pool's thread
  EXPECT_EQ(FullDigestOf(*back), FileDigestOf(::btrdupd::testing::PatternBytes(kFileSize, 'a')));
  EXPECT_EQ(pool.TakeStream(ticket), nullptr);  // taken once
}

TEST_F(ReadAheadPoolTest, RealFileAccessHandsTheHashedHintToTheHasherOnce) {
  RealFileAccess files(&opener(), 8 * kMiB, /*read_ahead_threads=*/2,
                       /*hash_prefix_bytes=*/64 << 10);
  files.Prefetch(Ref("a"), kMiB);
  EXPECT_EQ(files.TakeHashStream(Ref("b")), nullptr);  // not hinted
  std::shared_ptr<HashStream> stream = files.TakeHashStream(Ref("a"));
  ASSERT_NE(stream, nullptr);  // taken at whatever point its thread got to
  EXPECT_EQ(stream->opened().size, kFileSize);
  EXPECT_EQ(FullDigestOf(*stream), FileDigestOf(::btrdupd::testing::PatternBytes(kFileSize, 'a')));
  EXPECT_EQ(files.TakeHashStream(Ref("a")), nullptr);
}

}  // namespace
}  // namespace btrdupd
