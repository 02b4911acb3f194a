#include <gtest/gtest.h>
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/container/flat_hash_map.h"
#include <sqlite3.h>
#include <openssl/evp.h>
#include <btrfsutil.h>
TEST(Smoke, Links) {
  absl::StatusOr<int> s = 3; absl::flat_hash_map<int,int> m; m[1]=2;
  EXPECT_EQ(absl::StrCat(*s), "3"); EXPECT_NE(sqlite3_libversion(), nullptr);
  EXPECT_NE(EVP_sha256(), nullptr); EXPECT_NE(btrfs_util_strerror(BTRFS_UTIL_OK), nullptr);
}
