// Sha256: streaming SHA-256 over OpenSSL's EVP interface.
//
//   absl::StatusOr<Sha256> h = Sha256::Create();
//   h->Update(chunk1); h->Update(chunk2);
//   absl::StatusOr<std::string> digest = h->Finish();  // 32 raw bytes
//
// The EVP_MD_CTX is owned (freed when the object goes away). After Finish() the object
// is spent: Update/Finish fail with FailedPrecondition until Reset().
//
// Thread-compatible.

#ifndef BTRDUPD_CORE_SHA256_H_
#define BTRDUPD_CORE_SHA256_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct evp_md_ctx_st;

namespace btrdupd {

inline constexpr size_t kSha256Bytes = 32;

class Sha256 {
 public:
  static absl::StatusOr<Sha256> Create();

  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  ~Sha256();

  absl::Status Update(absl::string_view data);
  // The 32-byte digest of everything passed to Update since Create/Reset.
  absl::StatusOr<std::string> Finish();
  // Starts over.
  absl::Status Reset();

  // One-shot digest of `data`.
  static absl::StatusOr<std::string> Of(absl::string_view data);

 private:
  struct CtxDeleter {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  explicit Sha256(std::unique_ptr<evp_md_ctx_st, CtxDeleter> ctx);

  std::unique_ptr<evp_md_ctx_st, CtxDeleter> ctx_;
  bool finished_ = false;
};

// Lower-case hex of raw bytes (e.g. a digest).
std::string ToHex(absl::string_view raw);

}  // namespace btrdupd

#endif  // BTRDUPD_CORE_SHA256_H_
