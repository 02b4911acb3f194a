// Safety of the whole dedupe pipeline on real btrfs (issue 4's "Safety tests"): the
// engine with RealFileAccess and NativeBackend on a fresh loopback filesystem per test.
// The index is filled from stat() of the tree (like a full scan) and kept outside the
// filesystem under test.

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/dedupe_engine.h"
#include "core/index.h"
#include "core/sha256.h"
#include "daemon/file_opener.h"
#include "daemon/native_backend.h"
#include "daemon/real_file_access.h"
#include "ioctl/errno_status.h"
#include "ioctl/fiemap.h"
#include "ioctl/subvolumes.h"
#include "ioctl/unique_fd.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using testing::PatternBytes;
using testing::ReadFile;
using testing::RunShell;
using testing::RunChecked;
using testing::RunShellChecked;
using testing::WriteFile;
using testing::WritePatternFile;

// Records every request and runs a hook before passing it to the native backend. With
// `erofs_subvol` set it acts like an older kernel for that subvolume: while it is
// read-only, dedupe into it fails with EROFS.
class HookedBackend : public DedupeBackend {
 public:
  explicit HookedBackend(FileOpener* opener) : native(opener) {}
  std::string Name() const override { return "hooked-native"; }
  absl::Status CheckAvailable() const override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<DedupeOutcome>> Dedupe(const DedupeRequest& request) override {
    calls.push_back(request);
    if (before) before(request);
    if (erofs_subvol.empty() || !GetReadOnly(erofs_subvol).value_or(false)) {
      return native.Dedupe(request);
    }
    DedupeRequest allowed = request;
    allowed.destination_paths.clear();
    allowed.destinations.clear();
    for (size_t i = 0; i < request.destination_paths.size(); ++i) {
      const std::string& dest = request.destination_paths[i];
      if (dest.rfind(erofs_subvol + "/", 0) != 0) {
        allowed.destination_paths.push_back(dest);
        allowed.destinations.push_back(request.destinations[i]);
      }
    }
    absl::StatusOr<std::vector<DedupeOutcome>> done = native.Dedupe(allowed);
    if (!done.ok()) return done;
    std::vector<DedupeOutcome> out;
    size_t next = 0;
    for (const std::string& dest : request.destination_paths) {
      if (dest.rfind(erofs_subvol + "/", 0) == 0) {
        DedupeOutcome refused;
        refused.destination_path = dest;
        refused.error = ErrnoToStatus(EROFS, absl::StrCat("dedupe into ", dest));
        out.push_back(refused);
      } else {
        out.push_back((*done)[next++]);
      }
    }
    return out;
  }
  NativeBackend native;
  std::vector<DedupeRequest> calls;
  std::function<void(const DedupeRequest&)> before;
  std::string erofs_subvol;  // absolute path
};

// RealFileAccess that logs read-only flag changes and runs a hook before each open for
// reading.
class LoggingFileAccess : public RealFileAccess {
 public:
  explicit LoggingFileAccess(FileOpener* opener) : RealFileAccess(opener) {}
  absl::StatusOr<std::unique_ptr<SequentialFile>> OpenForRead(const FileRef& file) override {
    if (before_open) before_open(file.display);
    return RealFileAccess::OpenForRead(file);
  }
  std::function<void(const std::string&)> before_open;
  absl::Status SetSubvolumeReadOnly(const SubvolumeRef& subvol, bool read_only) override {
    flips.push_back(absl::StrCat(subvol.display, read_only ? "=ro" : "=rw"));
    return RealFileAccess::SetSubvolumeReadOnly(subvol, read_only);
  }
  std::vector<std::string> flips;
};

// Path -> SHA-256 (hex) of every regular file under `root`, plus "mode" lines so a lost
// file or a changed type shows.
std::map<std::string, std::string>* g_tree = nullptr;
size_t g_root_len = 0;

int TreeVisit(const char* path, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_F && S_ISREG(st->st_mode)) {
    absl::StatusOr<std::string> data = ReadFile(path);
    std::string digest = "unreadable";
    if (data.ok()) {
      absl::StatusOr<std::string> h = Sha256::Of(*data);
      if (h.ok()) digest = ToHex(*h);
    }
    (*g_tree)[std::string(path + g_root_len)] = digest;
  }
  return 0;
}

std::map<std::string, std::string> TreeChecksums(const std::string& root) {
  std::map<std::string, std::string> tree;
  g_tree = &tree;
  g_root_len = root.size();
  nftw(root.c_str(), TreeVisit, 64, FTW_PHYS);
  g_tree = nullptr;
  return tree;
}

absl::StatusOr<bool> Shared(const std::string& a, const std::string& b) {
  absl::StatusOr<UniqueFd> fa = OpenPath(a, O_RDONLY);
  if (!fa.ok()) return fa.status();
  absl::StatusOr<UniqueFd> fb = OpenPath(b, O_RDONLY);
  if (!fb.ok()) return fb.status();
  return SharesAllExtents(fa->get(), fb->get());
}

class DedupeSafetyTest : public testing::BtrfsTest {
 protected:
  void SetUp() override {
    BtrfsTest::SetUp();
    if (HasFatalFailure()) return;
    const char* tmp = std::getenv("TEST_TMPDIR");
    db_dir_ = absl::StrCat(tmp ? tmp : "/tmp", "/safety_db_",
                           ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_",
                           getpid());
    ASSERT_OK(RunChecked({"rm", "-rf", db_dir_}));
    ASSERT_OK(RunChecked({"mkdir", "-p", db_dir_}));
    ASSERT_OK_AND_ASSIGN(index_, VolumeIndex::Open(db_dir_ + "/btrdupd.db"));
    ASSERT_OK_AND_ASSIGN(opener_, FileOpener::Open(mount_path()));
    files_ = std::make_unique<LoggingFileAccess>(opener_.get());
    backend_ = std::make_unique<HookedBackend>(opener_.get());
  }

  void TearDown() override {
    index_.reset();
    backend_.reset();
    files_.reset();
    opener_.reset();
    BtrfsTest::TearDown();
    RunChecked({"rm", "-rf", db_dir_}).IgnoreError();
  }

  // Records the subvolumes and every regular file >= min_file_size, as a full scan would,
  // observed an hour ago (so they are eligible now).
  absl::Status IndexTree() {
    ASSIGN_OR_RETURN(std::vector<SubvolumeInfo> subvols, ListSubvolumes(mount_path()));
    subvol_by_dev_.clear();
    for (const SubvolumeInfo& s : subvols) {
      SubvolumeRecord r;
      r.id = s.id;
      r.path = s.path;
      r.uuid = s.uuid;
      r.parent_uuid = s.parent_uuid;
      r.received_uuid = s.received_uuid;
      r.read_only = s.read_only;
      RETURN_IF_ERROR(index_->UpsertSubvolume(r));
      struct stat st;
      if (stat(Path(s.path).c_str(), &st) != 0) {
        return ErrnoToStatus(errno, absl::StrCat("stat ", Path(s.path)));
      }
      subvol_by_dev_[st.st_dev] = s.id;
    }
    return Walk("");
  }

  absl::Status Walk(const std::string& rel) {
    const std::string abs = rel.empty() ? mount_path() : Path(rel);
    struct stat dst;
    if (lstat(abs.c_str(), &dst) != 0) return ErrnoToStatus(errno, absl::StrCat("lstat ", abs));
    ASSIGN_OR_RETURN(int64_t dir_id,
                     index_->EnsureDir(rel, subvol_by_dev_.at(dst.st_dev), dst.st_ino));
    ASSIGN_OR_RETURN(std::string listing,
                     RunChecked({"find", abs, "-mindepth", "1", "-maxdepth", "1",
                                 "-printf", "%f\\0"}));
    for (absl::string_view name : absl::StrSplit(listing, '\0', absl::SkipEmpty())) {
      const std::string child_rel = rel.empty() ? std::string(name) : absl::StrCat(rel, "/", name);
      const std::string child = Path(child_rel);
      struct stat st;
      if (lstat(child.c_str(), &st) != 0) {
        return ErrnoToStatus(errno, absl::StrCat("lstat ", child));
      }
      if (S_ISDIR(st.st_mode)) {
        RETURN_IF_ERROR(Walk(child_rel));
      } else if (S_ISREG(st.st_mode) &&
                 static_cast<uint64_t>(st.st_size) >= config_.min_file_size) {
        FileObservation seen;
        seen.subvol_id = subvol_by_dev_.at(st.st_dev);
        seen.ino = st.st_ino;
        seen.size = st.st_size;
        seen.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        seen.generation = 1;
        RETURN_IF_ERROR(index_->ObserveFile(dir_id, name, seen, absl::Now() - absl::Hours(1),
                                            ToStabilityPolicy(config_))
                            .status());
      }
    }
    return absl::OkStatus();
  }

  // Indexes the tree and runs the engine until it is idle.
  absl::StatusOr<EngineStats> Run() {
    RETURN_IF_ERROR(IndexTree());
    DedupeEngine engine(index_.get(), files_.get(), backend_.get(), config_, RealClock(),
                        mount_path());
    RETURN_IF_ERROR(engine.RestorePendingReadOnlyFlips());
    RETURN_IF_ERROR(engine.RunUntilIdle().status());
    return engine.stats();
  }

  FileRecord Record(const std::string& rel) {
    size_t slash = rel.rfind('/');
    std::string dir = slash == std::string::npos ? "" : rel.substr(0, slash);
    std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
    struct stat st;
    lstat((dir.empty() ? mount_path() : Path(dir)).c_str(), &st);
    absl::StatusOr<int64_t> dir_id = index_->EnsureDir(dir, subvol_by_dev_[st.st_dev], st.st_ino);
    EXPECT_OK(dir_id);
    absl::StatusOr<std::optional<FileRecord>> f = index_->FindFile(*dir_id, name);
    EXPECT_OK(f);
    EXPECT_TRUE(f.ok() && f->has_value()) << "not in the index: " << rel;
    return f.ok() && f->has_value() ? **f : FileRecord();
  }

  void ExpectShared(const std::string& a, const std::string& b) {
    absl::StatusOr<bool> shared = Shared(Path(a), Path(b));
    EXPECT_OK(shared);
    if (shared.ok()) EXPECT_TRUE(*shared) << a << " and " << b << " do not share their extents";
  }
  void ExpectNotShared(const std::string& a, const std::string& b) {
    absl::StatusOr<bool> shared = Shared(Path(a), Path(b));
    EXPECT_OK(shared);
    if (shared.ok()) EXPECT_FALSE(*shared) << a << " and " << b << " share their extents";
  }

  absl::Status Write(const std::string& rel, uint64_t size, uint64_t seed) {
    return WritePatternFile(Path(rel), size, seed);
  }

  absl::Status Sh(const std::string& command) { return RunShellChecked(command).status(); }

  VolumeConfig config_;
  std::string db_dir_;
  std::unique_ptr<VolumeIndex> index_;
  std::map<dev_t, uint64_t> subvol_by_dev_;
  std::unique_ptr<FileOpener> opener_;
  std::unique_ptr<LoggingFileAccess> files_;
  std::unique_ptr<HookedBackend> backend_;
};

TEST_F(DedupeSafetyTest, EveryFileIsByteIdenticalAfterARun) {
  ASSERT_OK(Sh(absl::StrCat("mkdir -p '", Path("d1"), "' '", Path("d2/deep"), "'")));
  ASSERT_OK(Write("d1/a", 8192, 1));
  ASSERT_OK(Write("d2/a", 8192, 1));
  ASSERT_OK(Write("d1/tail", (1 << 20) + 123, 2));
  ASSERT_OK(Write("d2/deep/tail", (1 << 20) + 123, 2));
  ASSERT_OK(Write("d2/tail3", (1 << 20) + 123, 2));
  ASSERT_OK(Write("d1/mid", 300 * 1024, 3));
  ASSERT_OK(Write("d2/mid", 300 * 1024, 3));
  ASSERT_OK(Write("d1/decoy", 300 * 1024, 4));  // same size, other content
  ASSERT_OK(Write("d1/unique", 50000, 5));
  ASSERT_OK(Write("d1/small", 4000, 1));        // under min_file_size
  ASSERT_OK(Write("d2/small", 4000, 1));
  ASSERT_OK(
      WriteFile(Path("d1/late_diff"), PatternBytes(300 * 1024, 3).substr(0, 300 * 1024 - 1) + "X"));
  std::map<std::string, std::string> before = TreeChecksums(mount_path());

  ASSERT_OK_AND_ASSIGN(EngineStats stats, Run());
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  ExpectShared("d1/a", "d2/a");
  ExpectShared("d1/tail", "d2/deep/tail");
  ExpectShared("d1/tail", "d2/tail3");
  ExpectShared("d1/mid", "d2/mid");
  ExpectNotShared("d1/mid", "d1/decoy");
  ExpectNotShared("d1/mid", "d1/late_diff");
  ExpectNotShared("d1/small", "d2/small");
  EXPECT_EQ(stats.files_deduped, 4);
  EXPECT_EQ(stats.bytes_shared, 8192u + 2 * ((1u << 20) + 123) + 300 * 1024);
  EXPECT_EQ(stats.files_skipped, 0);
}

TEST_F(DedupeSafetyTest, FileModifiedAfterHashingKeepsItsNewContentAndIsNotShared) {
  ASSERT_OK(Write("a", 1 << 20, 7));
  ASSERT_OK(Write("b", 1 << 20, 7));
  std::string changed = PatternBytes(1 << 20, 7);
  changed[500000] ^= 0x5a;
  backend_->before = [&](const DedupeRequest&) {
    ASSERT_OK(WriteFile(Path("b"), changed));
  };
  ASSERT_OK_AND_ASSIGN(EngineStats stats, Run());
  ASSERT_OK_AND_ASSIGN(std::string now_b, ReadFile(Path("b")));
  EXPECT_TRUE(now_b == changed);
  ExpectNotShared("a", "b");
  EXPECT_EQ(stats.files_changed, 1);
  EXPECT_EQ(stats.files_deduped, 0);
  FileRecord b = Record("b");
  EXPECT_EQ(b.hash_state, HashState::kNone);  // waits to be hashed again
  EXPECT_GT(b.next_eligible, absl::Now());
}

TEST_F(DedupeSafetyTest, FileDeletedMidRunIsForgottenAndTheRestIsDeduped) {
  ASSERT_OK(Write("a", 200000, 8));
  ASSERT_OK(Write("b", 200000, 8));
  ASSERT_OK(Write("c", 200000, 8));
  backend_->before = [&](const DedupeRequest&) { unlink(Path("c").c_str()); };
  std::map<std::string, std::string> expected = TreeChecksums(mount_path());
  expected.erase("/c");
  ASSERT_OK_AND_ASSIGN(EngineStats stats, Run());
  EXPECT_EQ(TreeChecksums(mount_path()), expected);
  ExpectShared("a", "b");
  EXPECT_EQ(stats.files_removed, 1);
  ASSERT_OK_AND_ASSIGN(IndexStats index_stats, index_->Stats(absl::Now()));
  EXPECT_EQ(index_stats.files_tracked, 2);
}

TEST_F(DedupeSafetyTest, FileDeletedBeforeItIsHashedIsForgotten) {
  ASSERT_OK(Write("a", 50000, 21));
  ASSERT_OK(Write("b", 50000, 21));
  ASSERT_OK(Write("c", 50000, 21));
  files_->before_open = [&](const std::string& path) {
    if (path == Path("a")) unlink(Path("c").c_str());  // gone before its turn
  };
  ASSERT_OK_AND_ASSIGN(EngineStats stats, Run());
  ExpectShared("a", "b");
  EXPECT_EQ(stats.files_removed, 1);
  ASSERT_OK_AND_ASSIGN(IndexStats index_stats, index_->Stats(absl::Now()));
  EXPECT_EQ(index_stats.files_tracked, 2);
}

TEST_F(DedupeSafetyTest, ImmutableFileIsNeverChanged) {
  ASSERT_OK(Write("frozen1", 100000, 9));
  ASSERT_OK(Write("frozen2", 100000, 9));
  ASSERT_OK(Write("normal", 100000, 9));
  ASSERT_OK(Sh(absl::StrCat("chattr +i '", Path("frozen1"), "' '", Path("frozen2"), "'")));
  std::map<std::string, std::string> before = TreeChecksums(mount_path());
  ASSERT_OK(Run());
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  // One immutable copy is the reference (it can still be read), the normal copy shares
  // it, the other immutable copy is skipped with its reason.
  ExpectShared("frozen1", "normal");
  EXPECT_EQ(Record("frozen1").dedupe_state, DedupeState::kReference);
  FileRecord f2 = Record("frozen2");
  EXPECT_EQ(f2.dedupe_state, DedupeState::kSkipped);
  EXPECT_EQ(f2.skip_kind, SkipKind::kImmutable) << f2.skip_detail;
  ASSERT_OK_AND_ASSIGN(std::string attrs, RunChecked({"lsattr", Path("frozen2")}));
  EXPECT_EQ(attrs.find('i') < attrs.find(' '), true) << attrs;
  ASSERT_OK(Sh(absl::StrCat("chattr -i '", Path("frozen1"), "' '", Path("frozen2"), "'")));
}

TEST_F(DedupeSafetyTest, AppendOnlyFileIsNeverChanged) {
  ASSERT_OK(Write("log1", 100000, 10));
  ASSERT_OK(Write("log2", 100000, 10));
  ASSERT_OK(Write("normal", 100000, 10));
  ASSERT_OK(Sh(absl::StrCat("chattr +a '", Path("log1"), "' '", Path("log2"), "'")));
  std::map<std::string, std::string> before = TreeChecksums(mount_path());
  ASSERT_OK(Run());
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  ExpectShared("log1", "normal");
  FileRecord l2 = Record("log2");
  EXPECT_EQ(l2.dedupe_state, DedupeState::kSkipped);
  EXPECT_EQ(l2.skip_kind, SkipKind::kAppendOnly) << l2.skip_detail;
  ASSERT_OK(Sh(absl::StrCat("chattr -a '", Path("log1"), "' '", Path("log2"), "'")));
}

TEST_F(DedupeSafetyTest, ActiveSwapFileIsNeverTouched) {
  const std::string swap = Path("swapfile");
  ASSERT_OK(Sh(absl::StrCat("btrfs filesystem mkswapfile --size 16m '", swap, "'")));
  // A NOCOW copy (same partition as the swap file) that would otherwise be deduped.
  // (dd, not cat: cat may reflink with copy_file_range, and swapon refuses shared extents.)
  ASSERT_OK(Sh(absl::StrCat("touch '", Path("copy"), "' && chattr +C '", Path("copy"),
                            "' && dd if='", swap, "' of='", Path("copy"),
                            "' bs=1M status=none")));
  ASSERT_OK(Sh(absl::StrCat("swapon '", swap, "'")));
  bool swapped_off = false;
  absl::Cleanup swapoff = [&] {  // the filesystem cannot be unmounted while swapping
    if (!swapped_off) RunShell(absl::StrCat("swapoff '", swap, "'")).IgnoreError();
  };
  std::map<std::string, std::string> before = TreeChecksums(mount_path());
  ASSERT_OK(Run());
  EXPECT_OK(Sh(absl::StrCat("swapoff '", swap, "'")));
  swapped_off = true;
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  FileRecord s = Record("swapfile");
  EXPECT_EQ(s.dedupe_state, DedupeState::kSkipped);
  EXPECT_EQ(s.skip_kind, SkipKind::kSwapfile) << s.skip_detail;
  EXPECT_EQ(s.hash_state, HashState::kNone);  // never read
  ExpectNotShared("swapfile", "copy");
}

TEST_F(DedupeSafetyTest, NocowFileNextToNormalCopiesSharesOnlyWithNocowCopies) {
  ASSERT_OK(Write("normal1", 150000, 11));
  ASSERT_OK(Write("normal2", 150000, 11));
  for (const char* name : {"nocow1", "nocow2"}) {
    ASSERT_OK(Sh(absl::StrCat("touch '", Path(name), "' && chattr +C '", Path(name), "'")));
    ASSERT_OK(WriteFile(Path(name), PatternBytes(150000, 11)));
  }
  std::map<std::string, std::string> before = TreeChecksums(mount_path());
  ASSERT_OK_AND_ASSIGN(EngineStats stats, Run());
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  ExpectShared("normal1", "normal2");
  ExpectShared("nocow1", "nocow2");
  ExpectNotShared("normal1", "nocow1");
  EXPECT_EQ(stats.files_skipped, 0);
}

TEST_F(DedupeSafetyTest, HardLinksAreNeverDedupedWithThemselves) {
  ASSERT_OK(Write("a", 120000, 12));
  ASSERT_OK(Sh(absl::StrCat("ln '", Path("a"), "' '", Path("a_link"), "'")));
  ASSERT_OK(Write("b", 120000, 12));
  std::map<std::string, std::string> before = TreeChecksums(mount_path());
  ASSERT_OK(Run());
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  ExpectShared("a", "b");
  for (const DedupeRequest& call : backend_->calls) {
    struct stat ref;
    ASSERT_EQ(stat(call.reference_path.c_str(), &ref), 0);
    for (const std::string& dest : call.destination_paths) {
      struct stat st;
      ASSERT_EQ(stat(dest.c_str(), &st), 0);
      EXPECT_FALSE(st.st_ino == ref.st_ino && st.st_dev == ref.st_dev)
          << dest << " deduped with its own inode " << call.reference_path;
    }
  }
  struct stat a;
  struct stat link;
  ASSERT_EQ(stat(Path("a").c_str(), &a), 0);
  ASSERT_EQ(stat(Path("a_link").c_str(), &link), 0);
  EXPECT_EQ(a.st_ino, link.st_ino);
  EXPECT_EQ(link.st_nlink, 2u);
}

TEST_F(DedupeSafetyTest, NamesWithSpacesNewlinesAndInvalidUtf8) {
  const std::vector<std::string> names = {"with space", "new\nline", std::string("bad\xff\xfe"),
                                          " lead and trail "};
  for (const std::string& name : names) ASSERT_OK(Write(name, 70000, 13));
  std::map<std::string, std::string> before = TreeChecksums(mount_path());
  ASSERT_OK_AND_ASSIGN(EngineStats stats, Run());
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  for (size_t i = 1; i < names.size(); ++i) ExpectShared(names[0], names[i]);
  EXPECT_EQ(stats.files_deduped, 3);
}

TEST_F(DedupeSafetyTest, HundredMebibyteFile) {
  const uint64_t size = uint64_t{100} << 20;
  ASSERT_OK(Write("big1", size, 14));
  ASSERT_OK(Write("big2", size, 14));
  std::map<std::string, std::string> before = TreeChecksums(mount_path());
  ASSERT_OK_AND_ASSIGN(EngineStats stats, Run());
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  ExpectShared("big1", "big2");
  EXPECT_EQ(stats.bytes_shared, size);
  // Read once each, plus the prefix of each.
  EXPECT_LE(stats.bytes_read, 2 * size + 2 * EngineOptions().prefix_bytes);
}

TEST_F(DedupeSafetyTest, FourHundredCopiesThenTheFourHundredFirstAgainstTheReferenceAlone) {
  ASSERT_OK(Sh(absl::StrCat("mkdir '", Path("many"), "'")));
  for (int i = 0; i < 400; ++i) ASSERT_OK(Write(absl::StrCat("many/copy", i), 16384, 15));
  std::map<std::string, std::string> before = TreeChecksums(mount_path());
  ASSERT_OK_AND_ASSIGN(EngineStats first, Run());
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  EXPECT_EQ(first.files_deduped, 399);
  std::string reference;
  for (const DedupeRequest& call : backend_->calls) {
    EXPECT_LE(call.destination_paths.size(), static_cast<size_t>(config_.dedup_batch_size));
    if (reference.empty()) reference = call.reference_path;
    EXPECT_EQ(call.reference_path, reference);
  }
  for (int i = 1; i < 400; ++i) ExpectShared("many/copy0", absl::StrCat("many/copy", i));

  backend_->calls.clear();
  ASSERT_OK(Write("many/copy400", 16384, 15));
  ASSERT_OK_AND_ASSIGN(EngineStats second, Run());
  ASSERT_EQ(backend_->calls.size(), 1u);
  EXPECT_EQ(backend_->calls[0].reference_path, reference);
  EXPECT_EQ(backend_->calls[0].destination_paths,
            std::vector<std::string>{Path("many/copy400")});
  EXPECT_EQ(second.files_deduped, 1);
  EXPECT_EQ(second.bytes_read, 16384u);  // only the newcomer was read
  ExpectShared("many/copy0", "many/copy400");
}

TEST_F(DedupeSafetyTest, ReadOnlySnapshotIsDedupedWithoutClearingItsFlag) {
  ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume create '", Path("sv"), "'")));
  ASSERT_OK(Write("sv/a", 200000, 17));
  ASSERT_OK(Write("sv/c", 200000, 17));  // a copy written separately: shares nothing yet
  ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume snapshot -r '", Path("sv"), "' '", Path("snap"),
                            "'")));
  int calls_while_writable = 0;
  backend_->before = [&](const DedupeRequest&) {
    if (!GetReadOnly(Path("snap")).value_or(false)) ++calls_while_writable;
  };
  std::map<std::string, std::string> before = TreeChecksums(mount_path());
  ASSERT_OK_AND_ASSIGN(EngineStats stats, Run());
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  for (const char* other : {"sv/c", "snap/a", "snap/c"}) ExpectShared("sv/a", other);
  // The snapshot copies got their hashes from their shared extents, without being read.
  EXPECT_GE(stats.hashes_copied, 2);
  EXPECT_LE(stats.bytes_read, 2 * 200000u + 2 * EngineOptions().prefix_bytes);
  // The snapshot's copy was deduped in place (a destination), its flag never touched.
  bool snapshot_was_destination = false;
  for (const DedupeRequest& call : backend_->calls) {
    for (const std::string& dest : call.destination_paths) {
      snapshot_was_destination |= dest.rfind(Path("snap") + "/", 0) == 0;
    }
  }
  EXPECT_TRUE(snapshot_was_destination);
  EXPECT_EQ(calls_while_writable, 0);
  EXPECT_TRUE(files_->flips.empty());
  EXPECT_EQ(stats.read_only_flips, 0);
  ASSERT_OK_AND_ASSIGN(bool read_only, GetReadOnly(Path("snap")));
  EXPECT_TRUE(read_only);
  ASSERT_OK_AND_ASSIGN(std::string property,
                       RunChecked({"btrfs", "property", "get", "-ts", Path("snap"), "ro"}));
  EXPECT_NE(property.find("ro=true"), std::string::npos) << property;
  ASSERT_OK_AND_ASSIGN(std::vector<ReadOnlyFlip> pending, index_->PendingReadOnlyFlips());
  EXPECT_TRUE(pending.empty());
}

TEST_F(DedupeSafetyTest, SnapshotRefusedWithErofsIsMadeWritableForOneRetryAndRestored) {
  ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume create '", Path("sv"), "'")));
  ASSERT_OK(Write("sv/a", 200000, 21));
  ASSERT_OK(Write("sv/c", 200000, 21));
  ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume snapshot -r '", Path("sv"), "' '", Path("snap"),
                            "'")));
  backend_->erofs_subvol = Path("snap");  // an older kernel
  std::vector<size_t> records_at_calls;
  backend_->before = [&](const DedupeRequest&) {
    absl::StatusOr<std::vector<ReadOnlyFlip>> records = index_->PendingReadOnlyFlips();
    records_at_calls.push_back(records.ok() ? records->size() : 99);
  };
  std::map<std::string, std::string> before = TreeChecksums(mount_path());
  ASSERT_OK_AND_ASSIGN(EngineStats stats, Run());
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  for (const char* other : {"sv/c", "snap/a", "snap/c"}) ExpectShared("sv/a", other);
  EXPECT_EQ(files_->flips,
            (std::vector<std::string>{Path("snap") + "=rw", Path("snap") + "=ro"}));
  EXPECT_EQ(stats.read_only_flips, 1);
  // The retry (and only it) ran with the flip recorded.
  ASSERT_FALSE(records_at_calls.empty());
  EXPECT_EQ(records_at_calls.back(), 1u);
  for (size_t i = 0; i + 1 < records_at_calls.size(); ++i) EXPECT_EQ(records_at_calls[i], 0u);
  ASSERT_OK_AND_ASSIGN(bool read_only, GetReadOnly(Path("snap")));
  EXPECT_TRUE(read_only);
  ASSERT_OK_AND_ASSIGN(std::vector<ReadOnlyFlip> pending, index_->PendingReadOnlyFlips());
  EXPECT_TRUE(pending.empty());
}

TEST_F(DedupeSafetyTest, ReadOnlyFlagLeftClearedByAKilledRunIsRestoredAtStart) {
  ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume create '", Path("sv"), "'")));
  ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume snapshot -r '", Path("sv"), "' '", Path("snap"),
                            "'")));
  ASSERT_OK_AND_ASSIGN(SubvolumeInfo info, GetSubvolumeInfo(Path("snap")));
  // What a run killed in the middle of a batch leaves behind.
  ReadOnlyFlip flip;
  flip.subvol_id = info.id;
  flip.path = "snap";
  flip.flipped_at = absl::Now();
  ASSERT_OK(index_->RecordReadOnlyFlip(flip));
  ASSERT_OK(SetReadOnly(Path("snap"), false));

  ASSERT_OK(Run());  // calls RestorePendingReadOnlyFlips() first
  ASSERT_OK_AND_ASSIGN(bool read_only, GetReadOnly(Path("snap")));
  EXPECT_TRUE(read_only);
  ASSERT_OK_AND_ASSIGN(std::vector<ReadOnlyFlip> pending, index_->PendingReadOnlyFlips());
  EXPECT_TRUE(pending.empty());
}

TEST_F(DedupeSafetyTest, ReceivedSnapshotIsNeverADestinationAndNeverMadeWritable) {
  ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume create '", Path("sv"), "'")));
  ASSERT_OK(Write("sv/a", 200000, 18));
  ASSERT_OK(Write("sv/c", 200000, 18));
  ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume snapshot -r '", Path("sv"), "' '", Path("snap"),
                            "' && mkdir '", Path("recv"), "' && btrfs -q send '", Path("snap"),
                            "' | btrfs -q receive '", Path("recv"), "'")));
  ASSERT_OK_AND_ASSIGN(SubvolumeInfo received, GetSubvolumeInfo(Path("recv/snap")));
  ASSERT_FALSE(received.received_uuid.empty()) << "btrfs receive did not set received_uuid";
  std::map<std::string, std::string> before = TreeChecksums(mount_path());
  ASSERT_OK(Run());
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  EXPECT_TRUE(files_->flips.empty());
  for (const DedupeRequest& call : backend_->calls) {
    for (const std::string& dest : call.destination_paths) {
      EXPECT_NE(dest.rfind(Path("recv") + "/", 0), 0u) << "a destination: " << dest;
    }
  }
  ASSERT_OK_AND_ASSIGN(SubvolumeInfo after, GetSubvolumeInfo(Path("recv/snap")));
  EXPECT_TRUE(after.read_only);
  EXPECT_EQ(after.received_uuid, received.received_uuid);
  // One received copy is the reference (it can be read, never written): every other copy
  // shares it; the other received copy is skipped with the reason.
  FileRecord ra = Record("recv/snap/a");
  FileRecord rc = Record("recv/snap/c");
  const FileRecord& reference = ra.dedupe_state == DedupeState::kReference ? ra : rc;
  const FileRecord& skipped = ra.dedupe_state == DedupeState::kReference ? rc : ra;
  EXPECT_EQ(reference.dedupe_state, DedupeState::kReference);
  EXPECT_EQ(skipped.dedupe_state, DedupeState::kSkipped);
  EXPECT_EQ(skipped.skip_kind, SkipKind::kReceivedSnapshot) << skipped.skip_detail;
  for (const char* other : {"sv/a", "sv/c", "snap/a", "snap/c"}) {
    ExpectShared(reference.path, other);
  }
}

TEST_F(DedupeSafetyTest, DryRunReportsWhatItWouldSaveAndChangesNothing) {
  ASSERT_OK(Write("a", 300000, 19));
  ASSERT_OK(Write("b", 300000, 19));
  ASSERT_OK(Write("c", 300000, 19));
  ASSERT_OK(Write("d", 50000, 20));
  ASSERT_OK(Write("e", 50000, 20));
  std::map<std::string, std::string> before = TreeChecksums(mount_path());
  ASSERT_OK(IndexTree());
  EngineOptions options;
  options.dry_run = true;
  DedupeEngine engine(index_.get(), files_.get(), backend_.get(), config_, RealClock(),
                      mount_path(), options);
  std::vector<PlannedGroup> planned;
  ASSERT_OK(engine.RunUntilIdle([&](const StepResult& r) {
    if (r.planned.has_value()) planned.push_back(*r.planned);
  }));
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  EXPECT_TRUE(backend_->calls.empty());
  EXPECT_TRUE(files_->flips.empty());
  ExpectNotShared("a", "b");
  ASSERT_EQ(planned.size(), 2u);
  EXPECT_EQ(planned[0].bytes_saveable + planned[1].bytes_saveable, 2 * 300000u + 50000u);
  EXPECT_EQ(engine.stats().bytes_saveable, 2 * 300000u + 50000u);
  for (const char* name : {"a", "b", "c", "d", "e"}) {
    EXPECT_EQ(Record(name).dedupe_state, DedupeState::kPending) << name;
  }
}

class CompressedDedupeSafetyTest : public DedupeSafetyTest {
 protected:
  testing::LoopBtrfs::Options FilesystemOptions() const override {
    testing::LoopBtrfs::Options options;
    options.mount_options = "compress=zstd";
    return options;
  }
};

TEST_F(CompressedDedupeSafetyTest, CompressedFilesAreDedupedAndIntact) {
  std::string text;
  while (text.size() < 600000) text += "btrdupd compresses well. ";
  ASSERT_OK(WriteFile(Path("c1"), text));
  ASSERT_OK(WriteFile(Path("c2"), text));
  ASSERT_OK(Write("r1", 300000, 16));  // incompressible, stored plain
  ASSERT_OK(Write("r2", 300000, 16));
  ASSERT_OK(Sh("sync"));
  std::map<std::string, std::string> before = TreeChecksums(mount_path());
  ASSERT_OK_AND_ASSIGN(EngineStats stats, Run());
  EXPECT_EQ(TreeChecksums(mount_path()), before);
  ExpectShared("c1", "c2");
  ExpectShared("r1", "r2");
  EXPECT_EQ(stats.files_deduped, 2);
}

}  // namespace
}  // namespace btrdupd
