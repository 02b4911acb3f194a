// One huge size group on fakes, worked through by the dedupe engine: the workload of
// tests/size_group_scaling_test.cc and bench/size_group_bench.cc.
//
// `files` files of one size in the top-level subvolume of a fake volume (fake file
// access and backend, the real SQLite index in `db_dir`), each distinct, or with
// `copies_of_each` identical copies per content. RunSizeGroup runs one engine pass to
// its end and reports the work done.

#ifndef BTRDUPD_TESTS_TESTING_SIZE_GROUP_WORLD_H_
#define BTRDUPD_TESTS_TESTING_SIZE_GROUP_WORLD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace btrdupd::testing {

struct SizeGroupRun {
  int64_t file_rows_read = 0;  // VolumeIndex::FileRowsRead() during the pass
  int64_t steps = 0;
  int64_t files_hashed = 0;
  int64_t files_deduped = 0;
  int64_t members_planned = 0;  // EngineStats::members_planned
  // The most FileAccess calls (opens, stats, attribute reads, FIEMAP) of one step.
  int64_t max_file_calls_per_step = 0;
  absl::Duration duration;  // of the pass only
};

absl::StatusOr<SizeGroupRun> RunSizeGroup(int files, int copies_of_each, uint64_t file_size,
                                          const std::string& db_dir);

}  // namespace btrdupd::testing

#endif  // BTRDUPD_TESTS_TESTING_SIZE_GROUP_WORLD_H_
