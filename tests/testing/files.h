// Small file helpers for tests: deterministic contents, whole-file reads.

#ifndef BTRDUPD_TESTS_TESTING_FILES_H_
#define BTRDUPD_TESTS_TESTING_FILES_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace btrdupd {
namespace testing {

// Returns `size` pseudo-random bytes determined by `seed`. Equal seeds give
// equal bytes; the bytes do not compress, so compression cannot hide extents.
std::string PatternBytes(uint64_t size, uint64_t seed);

// Creates or truncates `path` and writes `contents` to it.
absl::Status WriteFile(absl::string_view path, absl::string_view contents);

// Creates or truncates `path` and writes PatternBytes(size, seed) to it,
// streaming so that large files do not need the whole pattern in memory.
absl::Status WritePatternFile(absl::string_view path, uint64_t size, uint64_t seed);

// Returns the whole contents of `path`.
absl::StatusOr<std::string> ReadFile(absl::string_view path);

// How many pages of the first `size` bytes of `path` are in the page cache (mincore),
// or SIZE_MAX if that cannot be told.
size_t ResidentPages(const std::string& path, size_t size);

}  // namespace testing
}  // namespace btrdupd

#endif  // BTRDUPD_TESTS_TESTING_FILES_H_
