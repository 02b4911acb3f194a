// The FileAccess contract (core/file_access.h), case by case from the header's words,
// run on the fake (tests/testing/fake_file_access.h) and on RealFileAccess over a fresh
// loopback btrfs, through the worlds of tests/testing/file_worlds.h.

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "core/file_access.h"
#include "tests/testing/file_worlds.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace testing {
namespace {

enum class Impl { kFake, kReal };

std::string ImplName(const ::testing::TestParamInfo<Impl>& info) {
  return info.param == Impl::kFake ? "Fake" : "Real";
}

class FileAccessContract : public ::testing::TestWithParam<Impl> {
 protected:
  void SetUp() override {
    if (GetParam() == Impl::kFake) {
      world_ = MakeFakeFileWorld();
    } else {
      ASSERT_OK_AND_ASSIGN(world_, MakeRealFileWorld());
    }
    files_ = world_->access();
  }

  // Reads `file` to its end in 4 KiB steps.
  static absl::StatusOr<std::string> ReadAll(SequentialFile& file) {
    std::string out;
    std::string buf(4096, '\0');
    while (true) {
      absl::StatusOr<size_t> got = file.Read(buf.data(), buf.size());
      if (!got.ok()) return got.status();
      if (*got == 0) return out;
      out.append(buf.data(), *got);
    }
  }

  std::unique_ptr<FileWorld> world_;
  FileAccess* files_ = nullptr;
};

// "Read() returns the next bytes (0 at end of file)"; Stat() is fstat of the open file.
TEST_P(FileAccessContract, OpenForReadReturnsTheBytesThenZeroAndStatsTheFile) {
  const std::string data = PatternBytes(10000, 1);
  ASSERT_OK(world_->Write("a", data));
  const FileRef ref = world_->Ref("a");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SequentialFile> file, files_->OpenForRead(ref));
  ASSERT_OK_AND_ASSIGN(std::string read, ReadAll(*file));
  EXPECT_TRUE(read == data);
  ASSERT_OK_AND_ASSIGN(FileStat open_stat, file->Stat());
  EXPECT_EQ(open_stat.ino, ref.ino);
  EXPECT_EQ(open_stat.size, data.size());
  ASSERT_OK_AND_ASSIGN(FileStat path_stat, files_->Stat(ref));
  EXPECT_EQ(path_stat, open_stat);
}

// "NotFound if it is gone" / "the file (or a directory on its path) vanished".
TEST_P(FileAccessContract, AVanishedFileIsNotFoundForEveryCall) {
  ASSERT_OK(world_->Write("a", "x"));
  ASSERT_OK(world_->Write("b", "x"));
  const FileRef a = world_->Ref("a");
  ASSERT_OK(world_->Remove("a"));
  EXPECT_TRUE(absl::IsNotFound(files_->OpenForRead(a).status()));
  EXPECT_TRUE(absl::IsNotFound(files_->Stat(a).status()));
  EXPECT_TRUE(absl::IsNotFound(files_->GetAttributes(a).status()));
  EXPECT_TRUE(absl::IsNotFound(files_->HasSharedExtents(a).status()));
  EXPECT_TRUE(absl::IsNotFound(files_->SharesAllExtents(a, world_->Ref("b")).status()));
}

// "Aborted: the path no longer leads to the file the index recorded: another inode".
TEST_P(FileAccessContract, AnotherInodeAtThePathIsTreeChanged) {
  ASSERT_OK(world_->Write("a", "old"));
  const FileRef old_ref = world_->Ref("a");
  ASSERT_OK(world_->Write("keep", "k"));  // so the new "a" cannot reuse the inode
  ASSERT_OK(world_->Remove("a"));
  ASSERT_OK(world_->Write("a", "new"));
  ASSERT_NE(world_->Ref("a").ino, old_ref.ino);
  EXPECT_TRUE(IsTreeChanged(files_->OpenForRead(old_ref).status()));
  EXPECT_TRUE(IsTreeChanged(files_->Stat(old_ref).status()));
  EXPECT_TRUE(IsTreeChanged(files_->GetAttributes(old_ref).status()));
  EXPECT_TRUE(IsTreeChanged(files_->HasSharedExtents(old_ref).status()));
}

// An open file is an open descriptor: unlinking its path changes neither what it reads
// nor what its fstat says.
TEST_P(FileAccessContract, AnOpenFileStillReadsAndStatsAfterItsPathIsRemoved) {
  const std::string data = PatternBytes(6000, 2);
  ASSERT_OK(world_->Write("a", data));
  const FileRef ref = world_->Ref("a");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SequentialFile> file, files_->OpenForRead(ref));
  ASSERT_OK_AND_ASSIGN(FileStat before, file->Stat());
  ASSERT_OK(world_->Remove("a"));
  ASSERT_OK_AND_ASSIGN(FileStat after, file->Stat());
  EXPECT_EQ(after, before);
  ASSERT_OK_AND_ASSIGN(std::string read, ReadAll(*file));
  EXPECT_TRUE(read == data);
}

// Stat() of the open file is "enough to notice that it changed while read".
TEST_P(FileAccessContract, OpenFileStatNoticesAnAppend) {
  ASSERT_OK(world_->Write("a", PatternBytes(5000, 3)));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SequentialFile> file,
                       files_->OpenForRead(world_->Ref("a")));
  ASSERT_OK_AND_ASSIGN(FileStat before, file->Stat());
  ASSERT_OK(world_->Append("a", "more"));
  ASSERT_OK_AND_ASSIGN(FileStat after, file->Stat());
  EXPECT_EQ(after.size, before.size + 4);
}

// SharesAllExtents: "every byte on the same physical extents"; HasSharedExtents: "any
// extent shared with another file". Equal bytes are not shared extents.
TEST_P(FileAccessContract, AReflinkCopySharesAllExtentsAndAnEqualCopyNone) {
  const std::string data = PatternBytes(100000, 4);
  ASSERT_OK(world_->Write("a", data));
  ASSERT_OK(world_->Reflink("clone", "a"));
  ASSERT_OK(world_->Write("plain", data));
  ASSERT_OK_AND_ASSIGN(bool clone_shares, files_->SharesAllExtents(world_->Ref("a"),
                                                                   world_->Ref("clone")));
  EXPECT_TRUE(clone_shares);
  ASSERT_OK_AND_ASSIGN(bool plain_shares, files_->SharesAllExtents(world_->Ref("a"),
                                                                   world_->Ref("plain")));
  EXPECT_FALSE(plain_shares);
  ASSERT_OK_AND_ASSIGN(bool a_has_shared, files_->HasSharedExtents(world_->Ref("a")));
  EXPECT_TRUE(a_has_shared);
  ASSERT_OK_AND_ASSIGN(bool plain_has_shared, files_->HasSharedExtents(world_->Ref("plain")));
  EXPECT_FALSE(plain_has_shared);
}

// Two files that are only holes store nothing, so nothing of theirs differs: they share
// all extents; a hole file and a file with data do not; a hole file shares nothing.
TEST_P(FileAccessContract, FilesThatAreOnlyHolesShareAllExtents) {
  ASSERT_OK(world_->WriteHoles("h1", 1 << 20));
  ASSERT_OK(world_->WriteHoles("h2", 1 << 20));
  ASSERT_OK(world_->Write("data", PatternBytes(1 << 20, 5)));
  ASSERT_OK_AND_ASSIGN(bool holes, files_->SharesAllExtents(world_->Ref("h1"),
                                                            world_->Ref("h2")));
  EXPECT_TRUE(holes);
  ASSERT_OK_AND_ASSIGN(bool with_data, files_->SharesAllExtents(world_->Ref("h1"),
                                                                world_->Ref("data")));
  EXPECT_FALSE(with_data);
  ASSERT_OK_AND_ASSIGN(bool h1_has_shared, files_->HasSharedExtents(world_->Ref("h1")));
  EXPECT_FALSE(h1_has_shared);
}

// Space preallocated past the end of a file is not its content: it does not make a
// reflink copy look different, in either order. (The size is block-aligned: with a
// partial last block, btrfs's fallocate rewrites that block, and then the files really
// do not share it.)
TEST_P(FileAccessContract, PreallocationPastTheEndDoesNotHideSharing) {
  ASSERT_OK(world_->Write("a", PatternBytes(49 * 4096, 6)));
  ASSERT_OK(world_->Reflink("b", "a"));
  ASSERT_OK(world_->PreallocatePastEnd("b"));
  ASSERT_OK_AND_ASSIGN(bool ab, files_->SharesAllExtents(world_->Ref("a"), world_->Ref("b")));
  EXPECT_TRUE(ab);
  ASSERT_OK_AND_ASSIGN(bool ba, files_->SharesAllExtents(world_->Ref("b"), world_->Ref("a")));
  EXPECT_TRUE(ba);
}

// GetAttributes: chattr +C, +i, +a, each alone; a plain file has none.
TEST_P(FileAccessContract, AttributesReportNocowImmutableAndAppendOnly) {
  ASSERT_OK(world_->WriteNocow("nocow"));
  ASSERT_OK(world_->Write("imm", "x"));
  ASSERT_OK(world_->SetImmutable("imm"));
  ASSERT_OK(world_->Write("app", "x"));
  ASSERT_OK(world_->SetAppendOnly("app"));
  ASSERT_OK(world_->Write("plain", "x"));
  ASSERT_OK_AND_ASSIGN(FileAttributes nocow, files_->GetAttributes(world_->Ref("nocow")));
  EXPECT_TRUE(nocow.nocow);
  EXPECT_FALSE(nocow.immutable || nocow.append_only || nocow.swapfile);
  ASSERT_OK_AND_ASSIGN(FileAttributes imm, files_->GetAttributes(world_->Ref("imm")));
  EXPECT_TRUE(imm.immutable);
  EXPECT_FALSE(imm.nocow || imm.append_only || imm.swapfile);
  ASSERT_OK_AND_ASSIGN(FileAttributes app, files_->GetAttributes(world_->Ref("app")));
  EXPECT_TRUE(app.append_only);
  EXPECT_FALSE(app.nocow || app.immutable || app.swapfile);
  ASSERT_OK_AND_ASSIGN(FileAttributes plain, files_->GetAttributes(world_->Ref("plain")));
  EXPECT_FALSE(plain.nocow || plain.immutable || plain.append_only || plain.swapfile);
}

// GetSubvolumeFlags / SetSubvolumeReadOnly on a read-only snapshot (not received, on a
// writable mount), and on the writable subvolume it was taken of.
TEST_P(FileAccessContract, ReadOnlyFlagOfASnapshotIsReportedClearedAndSet) {
  ASSERT_OK(world_->MakeReadOnlySnapshot("sv", "snap"));
  ASSERT_OK_AND_ASSIGN(SubvolumeFlags sv, files_->GetSubvolumeFlags(world_->Subvol("sv")));
  EXPECT_FALSE(sv.read_only);
  ASSERT_OK_AND_ASSIGN(SubvolumeFlags snap, files_->GetSubvolumeFlags(world_->Subvol("snap")));
  EXPECT_TRUE(snap.read_only);
  EXPECT_FALSE(snap.received);
  EXPECT_FALSE(snap.on_read_only_mount);
  ASSERT_OK(files_->SetSubvolumeReadOnly(world_->Subvol("snap"), false));
  ASSERT_OK_AND_ASSIGN(snap, files_->GetSubvolumeFlags(world_->Subvol("snap")));
  EXPECT_FALSE(snap.read_only);
  ASSERT_OK(files_->SetSubvolumeReadOnly(world_->Subvol("snap"), true));
  ASSERT_OK_AND_ASSIGN(snap, files_->GetSubvolumeFlags(world_->Subvol("snap")));
  EXPECT_TRUE(snap.read_only);
}

INSTANTIATE_TEST_SUITE_P(Impls, FileAccessContract, ::testing::Values(Impl::kFake, Impl::kReal),
                         ImplName);

}  // namespace
}  // namespace testing
}  // namespace btrdupd
