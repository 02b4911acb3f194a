// kill -9 torture, on a real loopback btrfs through the btrdupd binary: a one-shot run
// on a volume holding a read-only snapshot is killed with SIGKILL at random moments
// (BTRDUPD_TORTURE_KILLS times, 20 by default), then run to the end. Afterwards every
// file has exactly the bytes it was written with, the snapshot is still read-only, and
// every group of identical files shares one set of extents.
//
// The moments come from a seeded generator; the seed is printed (and can be given with
// BTRDUPD_TORTURE_SEED to replay a run). BTRDUPD_TORTURE_SCALE multiplies the number of
// files (bench/kill9_torture.sh runs a long variant).

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/btrfs_test.h"
#include "tests/testing/command.h"
#include "tests/testing/duperemove_test_support.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

using ::btrdupd::testing::BtrfsTest;
using ::btrdupd::testing::PatternBytes;
using ::btrdupd::testing::ReadFile;
using ::btrdupd::testing::RunChecked;
using ::btrdupd::testing::RunShellChecked;
using ::btrdupd::testing::SharedPaths;
using ::btrdupd::testing::WritePatternFile;

constexpr char kBinary[] = "daemon/btrdupd";

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  uint64_t value = 0;
  return text != nullptr && absl::SimpleAtoi(text, &value) ? value : fallback;
}

struct TortureFile {
  std::string rel;  // relative to the volume root
  uint64_t size;
  uint64_t seed;    // contents: PatternBytes(size, seed)
};

class Kill9TortureTest : public BtrfsTest {
 protected:
  absl::Status Sh(const std::string& command) { return RunShellChecked(command).status(); }

  // Starts btrdupd on the volume; returns its pid. Its output is dropped unless `show`.
  pid_t Start(bool show = false) {
    const pid_t pid = fork();
    if (pid == 0) {
      const int null = open("/dev/null", O_WRONLY);
      dup2(null, STDOUT_FILENO);
      if (!show) dup2(null, STDERR_FILENO);
      execl(kBinary, kBinary, "--no-wait", mount_path().c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  }

  // Runs btrdupd to its end; returns its exit status.
  int RunToEnd() {
    int status = 0;
    waitpid(Start(/*show=*/true), &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::vector<TortureFile> files_;
  std::vector<std::vector<std::string>> groups_;  // identical files
};

TEST_F(Kill9TortureTest, KilledAtRandomMomentsThenRunToTheEndLosesNothing) {
  const uint64_t kills = EnvNumber("BTRDUPD_TORTURE_KILLS", 20);
  const uint64_t scale = std::max<uint64_t>(EnvNumber("BTRDUPD_TORTURE_SCALE", 1), 1);
  const uint64_t seed = EnvNumber("BTRDUPD_TORTURE_SEED",
                                  static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  std::cout << "kill -9 torture: seed " << seed << ", " << kills << " kills, scale " << scale
            << std::endl;
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 random(seed);

  // A subvolume with groups of identical files (4 copies each, sizes from 12 KiB to
  // 1 MiB) and unique files; a read-only snapshot of it; then half of the subvolume's
  // copies rewritten with the same bytes (new extents), and more copies at the top.
  ASSERT_OK(Sh(absl::StrCat("btrfs -q subvolume create '", Path("sv"), "'")));
  ASSERT_OK(
      Sh(absl::StrCat("mkdir -p '", Path("sv/d1"), "' '", Path("sv/d2"), "' '", Path("top"), "'")));
  const uint64_t groups = 24 * scale;
  for (uint64_t g = 0; g < groups; ++g) {
    const uint64_t size = 12 * 1024 + (random() % (256 * 1024));
    groups_.emplace_back();
    for (int c = 0; c < 4; ++c) {
      TortureFile f{absl::StrCat("sv/d", c % 2 + 1, "/g", g, "c", c), size, 1000 + g};
      ASSERT_TRUE(WritePatternFile(Path(f.rel), f.size, f.seed).ok());
      files_.push_back(f);
      groups_.back().push_back(f.rel);
    }
  }
  for (uint64_t u = 0; u < 4 * scale; ++u) {
    TortureFile f{absl::StrCat("sv/unique", u), 20000 + u, 5000 + u};
    ASSERT_TRUE(WritePatternFile(Path(f.rel), f.size, f.seed).ok());
    files_.push_back(f);
  }
  ASSERT_OK(
      Sh(absl::StrCat("btrfs -q subvolume snapshot -r '", Path("sv"), "' '", Path("snap"), "'")));
  const size_t in_sv = files_.size();
  for (size_t i = 0; i < in_sv; ++i) {
    TortureFile f = files_[i];
    f.rel = "snap" + f.rel.substr(2);
    files_.push_back(f);
    for (std::vector<std::string>& group : groups_) {
      if (group.front().substr(0, group.front().rfind('c')) ==
          files_[i].rel.substr(0, files_[i].rel.rfind('c'))) {
        group.push_back(f.rel);
        break;
      }
    }
  }
  for (size_t i = 0; i < in_sv; i += 2) {  // same bytes, new extents
    ASSERT_TRUE(WritePatternFile(Path(files_[i].rel), files_[i].size, files_[i].seed).ok());
  }
  for (uint64_t g = 0; g < groups; ++g) {
    TortureFile f{absl::StrCat("top/g", g), files_[g * 4].size, files_[g * 4].seed};
    ASSERT_TRUE(WritePatternFile(Path(f.rel), f.size, f.seed).ok());
    files_.push_back(f);
    groups_[g].push_back(f.rel);
  }
  sync();

  // Each run first gets new work (a new group of copies), then is killed at a random
  // moment within a window: 300 ms per scale unit at first, half as long again (up to
  // 1 s per scale unit) after each run the kill interrupted, the time the run took
  // after one it did not; so the
  // kills land in start-up, scans, hashing, dedupes and commits alike.
  uint64_t window_us = 300000 * scale;
  int interrupted = 0;
  for (uint64_t k = 0; k < kills; ++k) {
    groups_.emplace_back();
    const uint64_t size = 12 * 1024 + (random() % (256 * 1024));
    for (int c = 0; c < 3; ++c) {
      TortureFile f{absl::StrCat(c == 0 ? "top" : "sv/d1", "/new", k, "c", c), size, 9000 + k};
      ASSERT_TRUE(WritePatternFile(Path(f.rel), f.size, f.seed).ok());
      files_.push_back(f);
      groups_.back().push_back(f.rel);
    }
    const uint64_t delay_us = random() % std::max<uint64_t>(window_us, 1000);
    const absl::Time started = absl::Now();
    const pid_t pid = Start();
    usleep(static_cast<useconds_t>(delay_us));
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) {
      ++interrupted;
      window_us = std::min<uint64_t>(window_us * 3 / 2, 1000000 * scale);  // reach further in
    } else {
      window_us = static_cast<uint64_t>(absl::ToInt64Microseconds(absl::Now() - started));
    }
  }
  const absl::Time start = absl::Now();
  ASSERT_EQ(RunToEnd(), 0) << "seed " << seed;
  std::cout << interrupted << " of " << kills << " runs were killed before they ended; "
            << "the last run took " << absl::ToDoubleMilliseconds(absl::Now() - start)
            << " ms" << std::endl;
  // A second run finds nothing left to do and changes nothing.
  ASSERT_EQ(RunToEnd(), 0) << "seed " << seed;

  for (const TortureFile& f : files_) {
    absl::StatusOr<std::string> contents = ReadFile(Path(f.rel));
    ASSERT_TRUE(contents.ok()) << contents.status();
    EXPECT_TRUE(*contents == PatternBytes(f.size, f.seed)) << f.rel << " seed " << seed;
  }
  absl::StatusOr<std::string> ro =
      RunChecked({"btrfs", "property", "get", "-ts", Path("snap"), "ro"});
  ASSERT_TRUE(ro.ok()) << ro.status();
  EXPECT_NE(ro->find("ro=true"), std::string::npos) << *ro;
  for (const std::vector<std::string>& group : groups_) {
    for (size_t i = 1; i < group.size(); ++i) {
      EXPECT_TRUE(SharedPaths(Path(group[0]), Path(group[i])))
          << group[0] << " / " << group[i] << " seed " << seed;
    }
  }
}

}  // namespace
}  // namespace btrdupd
