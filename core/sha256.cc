#include "core/sha256.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace btrdupd {
namespace {

absl::Status OpenSslError(absl::string_view what) {
  unsigned long err = ERR_get_error();  // NOLINT(runtime/int): OpenSSL's type
  char text[256] = "unknown error";
  if (err != 0) ERR_error_string_n(err, text, sizeof(text));
  return absl::InternalError(absl::StrCat("SHA-256 ", what, ": ", text));
}

}  // namespace

void Sha256::CtxDeleter::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Sha256::Sha256(std::unique_ptr<evp_md_ctx_st, CtxDeleter> ctx) : ctx_(std::move(ctx)) {}
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;
Sha256::~Sha256() = default;

absl::StatusOr<Sha256> Sha256::Create() {
  std::unique_ptr<evp_md_ctx_st, CtxDeleter> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) return OpenSslError("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return OpenSslError("EVP_DigestInit_ex");
  }
  return Sha256(std::move(ctx));
}

absl::Status Sha256::Update(absl::string_view data) {
  if (ctx_ == nullptr || finished_) {
    return absl::FailedPreconditionError("SHA-256 Update after Finish");
  }
  if (data.empty()) return absl::OkStatus();
  if (EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1) {
    return OpenSslError("EVP_DigestUpdate");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Sha256::Finish() {
  if (ctx_ == nullptr || finished_) {
    return absl::FailedPreconditionError("SHA-256 Finish called twice");
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), digest, &length) != 1) {
    return OpenSslError("EVP_DigestFinal_ex");
  }
  finished_ = true;
  return std::string(reinterpret_cast<const char*>(digest), length);
}

absl::Status Sha256::Reset() {
  if (ctx_ == nullptr) return absl::FailedPreconditionError("SHA-256 object moved from");
  if (EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) {
    return OpenSslError("EVP_DigestInit_ex");
  }
  finished_ = false;
  return absl::OkStatus();
}

absl::StatusOr<std::string> Sha256::Of(absl::string_view data) {
  absl::StatusOr<Sha256> hash = Create();
  if (!hash.ok()) return hash.status();
  absl::Status status = hash->Update(data);
  if (!status.ok()) return status;
  return hash->Finish();
}

std::string ToHex(absl::string_view raw) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

}  // namespace btrdupd
