// Size group bench: one pass of the dedupe engine over a single size group of N files
// (fake filesystem and backend, the real SQLite index in a temporary directory), so the
// figure is the engine's own work. Prints the time, the file rows read from the index
// and the group members the dedupe planning looked at (EngineStats::members_planned),
// per file (all three should grow linearly with N), and the most FileAccess calls one
// step made (bounded, whatever N). --copies=N makes the whole group
// one set of identical files (N - 1 destinations in batches of 50).
//
//   bazel run -c opt //bench:size_group_bench -- --files=100000 [--copies=2] [--size=9000]

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tests/testing/size_group_world.h"

int main(int argc, char** argv) {
  int files = 100000;
  int copies = 1;
  uint64_t size = 9000;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    bool ok = false;
    if (arg.rfind("--files=", 0) == 0) ok = absl::SimpleAtoi(arg.substr(8), &files) && files >= 2;
    if (arg.rfind("--copies=", 0) == 0) ok = absl::SimpleAtoi(arg.substr(9), &copies) && copies >= 1;
    if (arg.rfind("--size=", 0) == 0) ok = absl::SimpleAtoi(arg.substr(7), &size) && size >= 8192;
    if (!ok) {
      std::fprintf(stderr,
                   "size_group_bench: bad argument '%s' (--files=N>=2, --copies=K>=1, "
                   "--size=BYTES>=8192)\n", arg.c_str());
      return 2;
    }
  }
  char dir[] = "/tmp/btrdupd-size-group-bench.XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  absl::StatusOr<btrdupd::testing::SizeGroupRun> run =
      btrdupd::testing::RunSizeGroup(files, copies, size, dir);
  (void)system(absl::StrCat("rm -rf '", dir, "'").c_str());
  if (!run.ok()) {
    std::fprintf(stderr, "size_group_bench: %s\n", run.status().ToString().c_str());
    return 1;
  }
  std::printf("%-8s %-7s %-7s %9s %8s %10s %13s %16s %15s %9s %9s\n", "files", "copies",
              "size", "pass s", "steps", "rows read", "rows per file", "planned per file",
              "max calls/step", "hashed", "deduped");
  std::printf("%-8d %-7d %-7llu %9.2f %8lld %10lld %13.2f %16.2f %15lld %9lld %9lld\n", files,
              copies, static_cast<unsigned long long>(size),
              absl::ToDoubleSeconds(run->duration), static_cast<long long>(run->steps),
              static_cast<long long>(run->file_rows_read),
              static_cast<double>(run->file_rows_read) / files,
              static_cast<double>(run->members_planned) / files,
              static_cast<long long>(run->max_file_calls_per_step),
              static_cast<long long>(run->files_hashed),
              static_cast<long long>(run->files_deduped));
  return 0;
}
