// The status macros of btrdupd's own code (tests add their assertions in
// tests/testing/status_macros.h, built on these):
//
//   RETURN_IF_ERROR(index->CommitBatch());          // returns the status if not OK
//   ASSIGN_OR_RETURN(FileStat st, files->Stat(p));  // st = *expr, or returns its status
//
// Both work in functions returning absl::Status or any absl::StatusOr<T>.

#ifndef BTRDUPD_CORE_STATUS_MACROS_H_
#define BTRDUPD_CORE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define BTRDUPD_STATUS_CONCAT_INNER_(a, b) a##b
#define BTRDUPD_STATUS_CONCAT_(a, b) BTRDUPD_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                                             \
  do {                                                                    \
    absl::Status btrdupd_return_status_ = (expr);                         \
    if (!btrdupd_return_status_.ok()) return btrdupd_return_status_;      \
  } while (false)

#define ASSIGN_OR_RETURN(lhs, expr) \
  BTRDUPD_ASSIGN_OR_RETURN_IMPL_(BTRDUPD_STATUS_CONCAT_(btrdupd_status_or_, __LINE__), lhs, expr)

#define BTRDUPD_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()

#endif  // BTRDUPD_CORE_STATUS_MACROS_H_
