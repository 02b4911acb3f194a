// core/sha256: streaming SHA-256 over OpenSSL EVP, against published test vectors.

#include "core/sha256.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace {

TEST(Sha256Test, KnownVectors) {
  ASSERT_OK_AND_ASSIGN(std::string empty, Sha256::Of(""));
  EXPECT_EQ(ToHex(empty), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  ASSERT_OK_AND_ASSIGN(std::string abc, Sha256::Of("abc"));
  EXPECT_EQ(ToHex(abc), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(abc.size(), kSha256Bytes);
}

TEST(Sha256Test, StreamingEqualsOneShot) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data.push_back(static_cast<char>(i * 7 + i / 13));
  ASSERT_OK_AND_ASSIGN(Sha256 h, Sha256::Create());
  for (size_t at = 0; at < data.size(); at += 4093) {
    ASSERT_OK(h.Update(absl::string_view(data).substr(at, 4093)));
  }
  ASSERT_OK_AND_ASSIGN(std::string streamed, h.Finish());
  ASSERT_OK_AND_ASSIGN(std::string whole, Sha256::Of(data));
  EXPECT_EQ(streamed, whole);
}

TEST(Sha256Test, FinishTwiceFailsUntilReset) {
  ASSERT_OK_AND_ASSIGN(Sha256 h, Sha256::Create());
  ASSERT_OK(h.Update("abc"));
  ASSERT_OK(h.Finish());
  const absl::Status finish_again = h.Finish().status();
  EXPECT_TRUE(absl::IsFailedPrecondition(finish_again)) << finish_again;
  const absl::Status update_after = h.Update("x");
  EXPECT_TRUE(absl::IsFailedPrecondition(update_after)) << update_after;
  ASSERT_OK(h.Reset());
  ASSERT_OK(h.Update("abc"));
  ASSERT_OK_AND_ASSIGN(std::string again, h.Finish());
  EXPECT_EQ(ToHex(again), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace btrdupd
