// index_size_bench: how big and how fast the volume index is for a volume of many small
// files. Not a test: it prints figures.
//
// Inserts N files (default 300 000, 8-24 KiB, 1 000 per directory, names like
// file_000123.dat) through VolumeIndex::ObserveFile in batches, into a fresh database
// in a temp dir, then reports: insert rate, database bytes per file (main file after a
// WAL checkpoint, per table/index when SQLite has the dbstat table), the cost of an
// unchanged re-observation pass, of SizesWithWork and NextEligibleAfter, and bytes per
// file after VACUUM.
//
//   bazel run //bench:index_size_bench -- --files=300000 --shuffle

#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/index.h"

ABSL_FLAG(int, files, 300000, "Number of files to insert.");
ABSL_FLAG(int, per_dir, 1000, "Files per directory.");
ABSL_FLAG(int, batch, 5000, "Files per transaction (as the scanner commits).");
ABSL_FLAG(bool, shuffle, false,
          "Observe each directory's files in random order instead of name order.");
ABSL_FLAG(std::string, dir, "", "Directory for the database (default: a new temp dir).");

namespace btrdupd {
namespace {

int64_t FileBytes(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

void Die(const absl::Status& status, const char* what) {
  if (status.ok()) return;
  std::fprintf(stderr, "index_size_bench: %s: %s\n", what, status.ToString().c_str());
  std::exit(1);
}

// Per table/index bytes, when this SQLite has the dbstat virtual table.
void PrintBreakdown(const std::string& db_path, int64_t files) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    return;
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT name, sum(pgsize), sum(payload), sum(unused) FROM dbstat "
                         "GROUP BY name ORDER BY sum(pgsize) DESC",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    std::printf("  (no dbstat table in this SQLite: no per-index breakdown)\n");
    sqlite3_close(db);
    return;
  }
  std::printf("  %-16s %12s %10s %10s %8s\n", "table/index", "bytes", "bytes/file",
              "payload/f", "fill");
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const double bytes = sqlite3_column_double(stmt, 1);
    const double payload = sqlite3_column_double(stmt, 2);
    const double unused = sqlite3_column_double(stmt, 3);
    std::printf("  %-16s %12.0f %10.1f %10.1f %7.0f%%\n",
                reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), bytes,
                bytes / files, payload / files, 100.0 * (bytes - unused) / bytes);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

int Main() {
  const int n = absl::GetFlag(FLAGS_files);
  const int per_dir = absl::GetFlag(FLAGS_per_dir);
  const int batch = absl::GetFlag(FLAGS_batch);
  std::string dir = absl::GetFlag(FLAGS_dir);
  if (dir.empty()) {
    const char* tmp = getenv("TMPDIR");
    dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/index_bench.XXXXXX");
    if (mkdtemp(dir.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
  }
  const std::string db_path = dir + "/btrdupd.db";
  ::unlink(db_path.c_str());
  absl::StatusOr<std::unique_ptr<VolumeIndex>> opened = VolumeIndex::Open(db_path);
  Die(opened.status(), "open");
  VolumeIndex& index = **opened;

  std::mt19937_64 rng(42);
  std::uniform_int_distribution<uint64_t> size_dist(8192, 24576);
  std::vector<uint64_t> sizes(n);
  for (uint64_t& s : sizes) s = size_dist(rng);
  const int64_t base_mtime_ns = int64_t{1700000000} * 1000000000 + 123456789;
  auto observation = [&](int i) {
    FileObservation o;
    o.subvol_id = 5;
    o.ino = 1000 + static_cast<uint64_t>(i);
    o.size = sizes[i];
    o.mtime_ns = base_mtime_ns + int64_t{i} * 7919 * 1000003;
    o.generation = 20000 + static_cast<uint64_t>(i / 500);
    return o;
  };
  // The order the scanner meets the files in: directory by directory.
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  if (absl::GetFlag(FLAGS_shuffle)) {
    for (int start = 0; start < n; start += per_dir) {
      std::shuffle(order.begin() + start, order.begin() + std::min(n, start + per_dir), rng);
    }
  }

  const StabilityPolicy policy;
  const absl::Time now = absl::FromUnixSeconds(1750000000);
  std::vector<int64_t> dir_ids((n + per_dir - 1) / per_dir);
  const absl::Time t0 = absl::Now();
  Die(index.BeginBatch(), "begin");
  for (int k = 0; k < n; ++k) {
    const int i = order[k];
    const int d = i / per_dir;
    if (k % per_dir == 0 || dir_ids[d] == 0) {
      absl::StatusOr<int64_t> id =
          index.EnsureDir(absl::StrFormat("data/dir_%04d", d), 5, 100000 + d);
      Die(id.status(), "EnsureDir");
      dir_ids[d] = *id;
    }
    Die(index.ObserveFile(dir_ids[d], absl::StrFormat("file_%06d.dat", i), observation(i),
                          now, policy)
            .status(),
        "ObserveFile");
    if ((k + 1) % batch == 0) {
      Die(index.CommitBatch(), "commit");
      Die(index.BeginBatch(), "begin");
    }
  }
  Die(index.CommitBatch(), "commit");
  const absl::Duration insert_time = absl::Now() - t0;

  // Unchanged pass: what a full rescan of a quiet volume costs the index.
  const absl::Time t1 = absl::Now();
  Die(index.BeginBatch(), "begin");
  for (int k = 0; k < n; ++k) {
    const int i = order[k];
    Die(index.ObserveFile(dir_ids[i / per_dir], absl::StrFormat("file_%06d.dat", i),
                          observation(i), now + absl::Hours(1), policy)
            .status(),
        "ObserveFile");
  }
  Die(index.CommitBatch(), "commit");
  const absl::Duration unchanged_time = absl::Now() - t1;

  const absl::Time t2 = absl::Now();
  absl::StatusOr<std::vector<uint64_t>> work = index.SizesWithWork(8192, now + absl::Hours(1));
  Die(work.status(), "SizesWithWork");
  const absl::Duration work_time = absl::Now() - t2;
  const absl::Time t3 = absl::Now();
  absl::StatusOr<std::optional<absl::Time>> next = index.NextEligibleAfter(now);
  Die(next.status(), "NextEligibleAfter");
  const absl::Duration next_time = absl::Now() - t3;
  const absl::Time t4 = absl::Now();
  absl::StatusOr<std::vector<FileRecord>> group = index.FilesOfSize(sizes[0]);
  Die(group.status(), "FilesOfSize");
  const absl::Duration group_time = absl::Now() - t4;

  const absl::Time t5 = absl::Now();
  absl::StatusOr<IndexStats> stats = index.Stats(now);
  Die(stats.status(), "Stats");
  const absl::Duration stats_time = absl::Now() - t5;
  const int64_t before_vacuum = stats->database_bytes;

  std::printf("index_size_bench: %d files, %d per directory, batches of %d, %s order\n", n,
              per_dir, batch, absl::GetFlag(FLAGS_shuffle) ? "shuffled" : "name");
  std::printf("insert:           %.0f files/s (%.2f s)\n",
              n / absl::ToDoubleSeconds(insert_time), absl::ToDoubleSeconds(insert_time));
  std::printf("unchanged pass:   %.0f files/s (%.2f s, no writes)\n",
              n / absl::ToDoubleSeconds(unchanged_time), absl::ToDoubleSeconds(unchanged_time));
  std::printf("SizesWithWork:    %.1f ms (%zu sizes, all %d files eligible)\n",
              absl::ToDoubleMilliseconds(work_time), work->size(), n);
  std::printf("NextEligibleAfter: %.3f ms\n", absl::ToDoubleMilliseconds(next_time));
  std::printf("FilesOfSize:      %.3f ms (%zu files)\n",
              absl::ToDoubleMilliseconds(group_time), group->size());
  std::printf("Stats:            %.1f ms (nothing hashed yet)\n",
              absl::ToDoubleMilliseconds(stats_time));
  std::printf("database:         %lld bytes = %.1f bytes/file (pages in use; WAL %lld bytes)\n",
              static_cast<long long>(before_vacuum), double(before_vacuum) / n,
              static_cast<long long>(FileBytes(db_path + "-wal")));
  PrintBreakdown(db_path, n);

  // A tenth of the files turn out to be duplicates: within each size, pairs with the
  // same hash, one of each pair deduped against the other.
  const int hashed_target = n / 10;
  int hashed = 0;
  Die(index.BeginBatch(), "begin");
  for (size_t k = 0; k < work->size() && hashed < hashed_target; ++k) {
    absl::StatusOr<std::vector<FileRecord>> members = index.FilesOfSize((*work)[k]);
    Die(members.status(), "FilesOfSize");
    for (size_t i = 0; i + 1 < members->size() && hashed < hashed_target; i += 2) {
      const std::string hash = absl::StrFormat("%032d", hashed);
      const int64_t a = (*members)[i].id, b = (*members)[i + 1].id;
      Die(index.SetHash(a, HashState::kFull, hash), "SetHash");
      Die(index.SetHash(b, HashState::kFull, hash), "SetHash");
      Die(index.SetDedupeState(a, DedupeState::kReference, 0), "SetDedupeState");
      Die(index.SetDedupeState(b, DedupeState::kDeduped, a), "SetDedupeState");
      hashed += 2;
    }
  }
  Die(index.CommitBatch(), "commit");
  const absl::Time t6 = absl::Now();
  stats = index.Stats(now);
  Die(stats.status(), "Stats");
  std::printf("Stats:            %.1f ms (%lld hashed, %lld groups, %lld deduped)\n",
              absl::ToDoubleMilliseconds(absl::Now() - t6),
              static_cast<long long>(stats->files_hashed),
              static_cast<long long>(stats->duplicate_groups),
              static_cast<long long>(stats->files_deduped));
  std::printf("with hashes:      %.1f bytes/file (%d of them hashed and processed)\n",
              double(stats->database_bytes) / n, hashed);

  Die(index.Vacuum(), "vacuum");
  stats = index.Stats(now);
  Die(stats.status(), "Stats");
  std::printf("after VACUUM:     %lld bytes = %.1f bytes/file (file on disk %lld bytes)\n",
              static_cast<long long>(stats->database_bytes),
              double(stats->database_bytes) / n,
              static_cast<long long>(FileBytes(db_path)));
  PrintBreakdown(db_path, n);
  return 0;
}

}  // namespace
}  // namespace btrdupd

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return btrdupd::Main();
}
