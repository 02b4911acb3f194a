// Assertions on absl::Status / absl::StatusOr for GoogleTest, printing the
// status on failure (RETURN_IF_ERROR and ASSIGN_OR_RETURN come from
// core/status_macros.h, the one header of the status macros):
//
//   ASSERT_OK(SyncFilesystem(fd.get()));
//   ASSERT_OK_AND_ASSIGN(UniqueFd fd, OpenPath(path, O_RDONLY));

#ifndef BTRDUPD_TESTS_TESTING_STATUS_MACROS_H_
#define BTRDUPD_TESTS_TESTING_STATUS_MACROS_H_

#include <gtest/gtest.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/status_macros.h"

namespace btrdupd {
namespace testing {
namespace internal {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }

template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

}  // namespace internal
}  // namespace testing
}  // namespace btrdupd

#define BTRDUPD_EXPECT_OK_IMPL_(check, expr)                                    \
  do {                                                                          \
    const absl::Status btrdupd_status_ =                                        \
        ::btrdupd::testing::internal::GetStatus(expr);                          \
    check(btrdupd_status_.ok()) << #expr << " returned " << btrdupd_status_;   \
  } while (false)

#define EXPECT_OK(expr) BTRDUPD_EXPECT_OK_IMPL_(EXPECT_TRUE, expr)
#define ASSERT_OK(expr) BTRDUPD_EXPECT_OK_IMPL_(ASSERT_TRUE, expr)

#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  BTRDUPD_ASSERT_OK_AND_ASSIGN_IMPL_(    \
      BTRDUPD_STATUS_CONCAT_(btrdupd_status_or_, __LINE__), lhs, rexpr)

#define BTRDUPD_ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, rexpr)                 \
  auto tmp = (rexpr);                                                       \
  ASSERT_TRUE(tmp.ok()) << #rexpr << " returned " << tmp.status();         \
  lhs = std::move(tmp).value()

#endif  // BTRDUPD_TESTS_TESTING_STATUS_MACROS_H_
