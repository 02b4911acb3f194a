#include "tests/testing/size_group_world.h"

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/dedupe_engine.h"
#include "core/index.h"
#include "core/status_macros.h"
#include "tests/testing/counting_file_access.h"
#include "tests/testing/fake_file_access.h"

namespace btrdupd::testing {

absl::StatusOr<SizeGroupRun> RunSizeGroup(int files, int copies_of_each, uint64_t file_size,
                                          const std::string& db_dir) {
  FakeClock clock(absl::FromUnixSeconds(1700000000));
  FakeFileAccess fs;
  FakeDedupeBackend backend(&fs);
  VolumeConfig config;
  ASSIGN_OR_RETURN(std::unique_ptr<VolumeIndex> index,
                   VolumeIndex::Open(absl::StrCat(db_dir, "/btrdupd.db")));
  SubvolumeRecord top;
  top.id = 5;
  RETURN_IF_ERROR(index->UpsertSubvolume(top));
  RETURN_IF_ERROR(index->BeginBatch());
  constexpr int kPerDir = 1000;
  int64_t dir_id = 0;
  for (int i = 0; i < files; ++i) {
    const std::string dir = absl::StrCat("d", i / kPerDir);
    if (i % kPerDir == 0) {
      ASSIGN_OR_RETURN(dir_id, index->EnsureDir(dir, 5, 100 + i / kPerDir));
    }
    const std::string name = absl::StrCat("f", i);
    const int content = copies_of_each > 1 ? i / copies_of_each : i;
    std::string contents(file_size, 'x');
    const std::string tag = absl::StrCat(content, ":");
    contents.replace(0, tag.size(), tag);
    const uint64_t ino = 1000000 + static_cast<uint64_t>(i);
    fs.AddFile(absl::StrCat("/vol/", dir, "/", name), std::move(contents), ino, 1000);
    FileObservation seen;
    seen.subvol_id = 5;
    seen.ino = ino;
    seen.size = file_size;
    seen.mtime_ns = 1000;
    seen.generation = 7;
    RETURN_IF_ERROR(index->ObserveFile(dir_id, name, seen, clock.Now() - absl::Hours(1),
                                       ToStabilityPolicy(config))
                        .status());
  }
  RETURN_IF_ERROR(index->CommitBatch());

  EngineOptions options;
  options.prefetch_bytes = 0;
  CountingFileAccess counting(&fs);
  DedupeEngine engine(index.get(), &counting, &backend, config, &clock, "/vol", options);
  const int64_t rows_before = index->FileRowsRead();
  SizeGroupRun run;
  int64_t calls_before = 0;
  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(engine
                      .RunUntilIdle([&](const StepResult&) {
                        const FileAccessCounts& c = counting.counts();
                        const int64_t calls =
                            c.opens_for_read + c.fiemap_calls + c.stats + c.attribute_reads;
                        run.max_file_calls_per_step =
                            std::max(run.max_file_calls_per_step, calls - calls_before);
                        calls_before = calls;
                        counting.ClearOpened();
                      })
                      .status());
  run.duration = absl::Now() - start;
  run.file_rows_read = index->FileRowsRead() - rows_before;
  run.steps = engine.stats().steps;
  run.files_hashed = engine.stats().files_hashed + engine.stats().hashes_copied;
  run.files_deduped = engine.stats().files_deduped;
  run.members_planned = engine.stats().members_planned;
  return run;
}

}  // namespace btrdupd::testing
