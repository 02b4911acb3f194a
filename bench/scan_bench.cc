// scan_bench: the scanner's figures on a generated volume (issue 3's benchmark).
//
//   sudo bazel run -c opt //bench:scan_bench -- [--files=300000] [--files_per_dir=1000]
//
// Makes its own loopback btrfs in a temporary directory (LoopBtrfs: removed at exit),
// fills it with --files files of 8-24 KiB in directories of --files_per_dir files, then
// prints:
//  - the full scan (first run, empty database, cold cache: the filesystem is remounted
//    first): files/s and the peak RSS of the process that ran it;
//  - an incremental pass after 100 new files and 20 deletions: its wall time and
//    whether it found exactly those changes;
//  - database bytes per tracked file.
// Each scan runs in a fresh process (this binary re-executed with --child), so the RSS
// figure is the scan's own. Targets (issue 3): incremental < 0.5 s, RSS < 50 MiB,
// < 150 bytes per file.

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/index.h"
#include "core/scanner.h"
#include "daemon/real_volume_fs.h"
#include "tests/testing/command.h"
#include "tests/testing/loop_btrfs.h"

ABSL_FLAG(int, files, 300000, "Files to generate (8-24 KiB each).");
ABSL_FLAG(int, files_per_dir, 1000, "Files per directory.");
ABSL_FLAG(std::string, child, "",
          "Internal: run one scan of the volume mounted at this path and print RESULT.");
ABSL_FLAG(bool, child_force, false, "Internal: the --child scan is a forced full scan.");

namespace btrdupd {
namespace {

using ::btrdupd::testing::LoopBtrfs;
using ::btrdupd::testing::RunChecked;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "scan_bench: %s\n", message.c_str());
  std::exit(1);
}

std::string DbPath(const std::string& mount) { return mount + "/.btrdupd/btrdupd.db"; }

// --child: one Scanner::Run in this fresh process.
int RunChild(const std::string& mount) {
  absl::StatusOr<std::unique_ptr<RealVolumeFs>> fs = RealVolumeFs::Open(mount);
  if (!fs.ok()) Die(fs.status().ToString());
  absl::StatusOr<std::unique_ptr<VolumeIndex>> index = VolumeIndex::Open(DbPath(mount));
  if (!index.ok()) Die(index.status().ToString());
  VolumeConfig config;
  Scanner scanner(fs->get(), index->get(), config, RealClock());
  const absl::Time start = absl::Now();
  absl::StatusOr<ScanReport> report = scanner.Run(
      absl::GetFlag(FLAGS_child_force) ? ScanMode::kForceFull : ScanMode::kAuto);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (!report.ok()) Die(report.status().ToString());
  index->reset();  // closes the database (WAL checkpoint)
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  std::printf("RESULT %s %lld %lld %lld %lld %lld %.6f %ld\n", ScanKindName(report->kind),
              static_cast<long long>(report->files_seen),
              static_cast<long long>(report->files_added),
              static_cast<long long>(report->files_removed),
              static_cast<long long>(report->dirs_listed),
              static_cast<long long>(report->errors), seconds, usage.ru_maxrss);
  return 0;
}

struct ChildResult {
  std::string kind;
  int64_t files_seen = 0, added = 0, removed = 0, dirs_listed = 0, errors = 0;
  double seconds = 0;
  int64_t maxrss_kib = 0;
};

ChildResult ScanInChild(const std::string& mount, bool force = false) {
  absl::StatusOr<::btrdupd::testing::CommandResult> run = ::btrdupd::testing::RunCommand(
      {"/proc/self/exe", absl::StrCat("--child=", mount),
       absl::StrCat("--child_force=", force ? "true" : "false")});
  if (!run.ok()) Die(run.status().ToString());
  if (!run->ok()) Die(absl::StrCat("child scan failed: ", run->stderr_text));
  for (absl::string_view line : absl::StrSplit(run->stdout_text, '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() != 9 || f[0] != "RESULT") continue;
    ChildResult r;
    r.kind = f[1];
    if (!absl::SimpleAtoi(f[2], &r.files_seen) || !absl::SimpleAtoi(f[3], &r.added) ||
        !absl::SimpleAtoi(f[4], &r.removed) || !absl::SimpleAtoi(f[5], &r.dirs_listed) ||
        !absl::SimpleAtoi(f[6], &r.errors) || !absl::SimpleAtod(f[7], &r.seconds) ||
        !absl::SimpleAtoi(f[8], &r.maxrss_kib)) {
      break;
    }
    return r;
  }
  Die(absl::StrCat("no RESULT line from the child: ", run->stdout_text, run->stderr_text));
}

void WriteFile(const std::string& path, const char* data, size_t size) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die(absl::StrCat("create ", path, ": ", strerror(errno)));
  if (write(fd, data, size) != static_cast<ssize_t>(size)) {
    Die(absl::StrCat("write ", path, ": ", strerror(errno)));
  }
  close(fd);
}

void Sync(const std::string& mount) {
  const int fd = open(mount.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || syncfs(fd) != 0) Die(absl::StrCat("syncfs ", mount, ": ", strerror(errno)));
  close(fd);
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

int RunBenchmark() {
  const int files = absl::GetFlag(FLAGS_files);
  const int per_dir = absl::GetFlag(FLAGS_files_per_dir);
  if (files < 200 || per_dir < 1) Die("--files must be >= 200, --files_per_dir >= 1");
  LoopBtrfs::Options options;
  // ~16 KiB average data plus metadata (DUP on one device), with room to spare.
  options.size_bytes = (static_cast<uint64_t>(files) * 56 * 1024) + (uint64_t{2} << 30);
  absl::StatusOr<std::unique_ptr<LoopBtrfs>> fs = LoopBtrfs::Create(options);
  if (!fs.ok()) Die(fs.status().ToString());
  const std::string mount = (*fs)->mount_path();
  std::printf("volume: %s (image %s)\n", mount.c_str(), (*fs)->image_path().c_str());

  // Generation: one write per file from a random buffer (contents need not differ).
  std::mt19937_64 rng(42);
  std::vector<char> buffer(24 * 1024 + 64);
  for (char& c : buffer) c = static_cast<char>(rng());
  const absl::Time gen_start = absl::Now();
  const int dirs = (files + per_dir - 1) / per_dir;
  for (int d = 0; d < dirs; ++d) {
    const std::string dir = absl::StrCat(mount, "/d", d);
    if (mkdir(dir.c_str(), 0755) != 0) Die(absl::StrCat("mkdir ", dir));
    for (int f = 0; f < per_dir && d * per_dir + f < files; ++f) {
      const size_t size = 8192 + rng() % (16 * 1024 + 1);
      WriteFile(absl::StrCat(dir, "/f", f), buffer.data() + (rng() % 64), size);
    }
  }
  if (mkdir((mount + "/.btrdupd").c_str(), 0700) != 0) Die("mkdir .btrdupd");
  Sync(mount);
  std::printf("generated: %d files in %d directories in %.1f s\n", files, dirs,
              absl::ToDoubleSeconds(absl::Now() - gen_start));

  // Cold cache for this filesystem only: remount it.
  absl::StatusOr<std::string> out = RunChecked({"umount", mount});
  if (!out.ok()) Die(out.status().ToString());
  out = RunChecked({"mount", "-o", "loop", (*fs)->image_path(), mount});
  if (!out.ok()) Die(out.status().ToString());

  const ChildResult full = ScanInChild(mount);
  std::printf("\nfull scan (cold cache, empty database): %s, %lld files seen, %lld indexed, "
              "%lld errors\n",
              full.kind.c_str(), static_cast<long long>(full.files_seen),
              static_cast<long long>(full.added), static_cast<long long>(full.errors));
  std::printf("  time %.2f s, rate %.0f files/s, peak RSS %.1f MiB (target < 50)\n",
              full.seconds, full.files_seen / full.seconds, full.maxrss_kib / 1024.0);

  // 100 new files spread over 10 directories, 20 deletions from 2 others.
  for (int i = 0; i < 100; ++i) {
    const std::string path = absl::StrCat(mount, "/d", (i % 10) * (dirs / 10), "/new", i);
    WriteFile(path, buffer.data(), 10000 + i);
  }
  for (int i = 0; i < 20; ++i) {
    const int d = i < 10 ? dirs / 3 : (2 * dirs) / 3 + 1;
    const std::string path = absl::StrCat(mount, "/d", std::min(d, dirs - 1), "/f", i);
    if (unlink(path.c_str()) != 0) Die(absl::StrCat("unlink ", path));
  }
  Sync(mount);
  const ChildResult inc = ScanInChild(mount);
  const bool exact = inc.kind == "incremental" && inc.added == 100 && inc.removed == 20;
  std::printf("\nincremental pass after 100 new files and 20 deletions: %s\n", inc.kind.c_str());
  std::printf("  time %.3f s (target < 0.5), added %lld, removed %lld, directories listed "
              "%lld, peak RSS %.1f MiB: %s\n",
              inc.seconds, static_cast<long long>(inc.added),
              static_cast<long long>(inc.removed), static_cast<long long>(inc.dirs_listed),
              inc.maxrss_kib / 1024.0, exact ? "exactly those changes" : "MISMATCH");

  const ChildResult idle = ScanInChild(mount);
  std::printf("\nincremental pass with nothing changed: %.3f s, %lld directories listed\n",
              idle.seconds, static_cast<long long>(idle.dirs_listed));

  const ChildResult forced = ScanInChild(mount, /*force=*/true);
  std::printf("\nforced full rescan of the unchanged volume (warm cache): %.2f s, %.0f files/s, "
              "%lld changed rows, peak RSS %.1f MiB\n",
              forced.seconds, forced.files_seen / forced.seconds,
              static_cast<long long>(forced.added + forced.removed),
              forced.maxrss_kib / 1024.0);

  const int64_t tracked = full.added + 100 - 20;
  const int64_t db = FileSize(DbPath(mount));
  const int64_t wal = FileSize(DbPath(mount) + "-wal");
  std::printf("\ndatabase: %lld bytes (+ %lld WAL) for %lld files: %.1f bytes/file "
              "(target < 150)\n",
              static_cast<long long>(db), static_cast<long long>(wal),
              static_cast<long long>(tracked), static_cast<double>(db) / tracked);
  return exact ? 0 : 2;
}

}  // namespace
}  // namespace btrdupd

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string child = absl::GetFlag(FLAGS_child);
  if (!child.empty()) return btrdupd::RunChild(child);
  if (geteuid() != 0) btrdupd::Die("needs root (mount, tree search)");
  return btrdupd::RunBenchmark();
}
