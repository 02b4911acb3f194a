// The DedupeBackend contract (core/dedupe_backend.h), case by case from the header's
// words, run on FakeDedupeBackend and on NativeBackend over a fresh loopback btrfs,
// through the worlds of tests/testing/file_worlds.h. Sharing is checked with the same
// world's FileAccess::SharesAllExtents (held to the kernel by the FileAccess contract).

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/dedupe_backend.h"
#include "core/file_access.h"
#include "tests/testing/file_worlds.h"
#include "tests/testing/files.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace testing {
namespace {

enum class Impl { kFake, kNative };

std::string ImplName(const ::testing::TestParamInfo<Impl>& info) {
  return info.param == Impl::kFake ? "Fake" : "Native";
}

using Kind = DedupeOutcome::Kind;

class DedupeBackendContract : public ::testing::TestWithParam<Impl> {
 protected:
  void SetUp() override {
    if (GetParam() == Impl::kFake) {
      world_ = MakeFakeFileWorld();
    } else {
      ASSERT_OK_AND_ASSIGN(world_, MakeRealFileWorld());
    }
  }

  DedupeRequest Request(const std::string& reference, const std::vector<std::string>& dests,
                        uint64_t size) {
    DedupeRequest r;
    r.reference = world_->Ref(reference);
    r.reference_path = r.reference.display;
    for (const std::string& d : dests) {
      r.destinations.push_back(world_->Ref(d));
      r.destination_paths.push_back(r.destinations.back().display);
    }
    r.size = size;
    return r;
  }

  absl::StatusOr<bool> Shared(const std::string& a, const std::string& b) {
    return world_->access()->SharesAllExtents(world_->Ref(a), world_->Ref(b));
  }

  std::unique_ptr<FileWorld> world_;
};

// "Returns one outcome per destination, in request order"; kDeduped: "the whole range
// shared", with an unaligned tail.
TEST_P(DedupeBackendContract, IdenticalDestinationsAreSharedInRequestOrder) {
  const uint64_t size = 3 * 4096 + 123;
  const std::string data = PatternBytes(size, 1);
  ASSERT_OK(world_->Write("a", data));
  ASSERT_OK(world_->Write("b", data));
  ASSERT_OK(world_->Write("c", data));
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeOutcome> out,
                       world_->backend()->Dedupe(Request("a", {"b", "c"}, size)));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].destination_path, world_->Ref("b").display);
  EXPECT_EQ(out[1].destination_path, world_->Ref("c").display);
  for (const DedupeOutcome& o : out) {
    EXPECT_EQ(o.kind, Kind::kDeduped) << o.destination_path << " " << o.error;
    EXPECT_EQ(o.bytes_deduped, size);
  }
  ASSERT_OK_AND_ASSIGN(bool ab, Shared("a", "b"));
  EXPECT_TRUE(ab);
  ASSERT_OK_AND_ASSIGN(bool ac, Shared("a", "c"));
  EXPECT_TRUE(ac);
}

// kDiffers: "contents differ from the reference now"; nothing is shared or changed.
TEST_P(DedupeBackendContract, ADestinationWithOtherBytesOrAnotherSizeDiffers) {
  const uint64_t size = 3 * 4096;
  const std::string data = PatternBytes(size, 2);
  std::string last = data;
  last.back() ^= 1;
  ASSERT_OK(world_->Write("a", data));
  ASSERT_OK(world_->Write("last", last));
  ASSERT_OK(world_->Write("shorter", data.substr(0, size - 4096)));
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeOutcome> out,
                       world_->backend()->Dedupe(Request("a", {"last", "shorter"}, size)));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].kind, Kind::kDiffers) << out[0].error;
  EXPECT_EQ(out[1].kind, Kind::kDiffers) << out[1].error;
  ASSERT_OK_AND_ASSIGN(bool shared, Shared("a", "last"));
  EXPECT_FALSE(shared);
}

// Per-file trouble goes in the outcomes (kFailed with its error) and does not stop the
// other destinations: a vanished one (NotFound), an immutable one (EPERM), one that is another inode now (Aborted: IsTreeChanged).
TEST_P(DedupeBackendContract, PerDestinationFailuresDoNotStopTheOthers) {
  const uint64_t size = 2 * 4096;
  const std::string data = PatternBytes(size, 3);
  ASSERT_OK(world_->Write("a", data));
  for (const char* name : {"gone", "frozen", "replaced", "ok"}) {
    ASSERT_OK(world_->Write(name, data));
  }
  ASSERT_OK(world_->SetImmutable("frozen"));
  DedupeRequest request = Request("a", {"gone", "frozen", "replaced", "ok"}, size);
  ASSERT_OK(world_->Remove("gone"));
  ASSERT_OK(world_->Remove("replaced"));
  ASSERT_OK(world_->Write("replaced", data));
  ASSERT_OK_AND_ASSIGN(std::vector<DedupeOutcome> out, world_->backend()->Dedupe(request));
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].kind, Kind::kFailed);
  EXPECT_TRUE(absl::IsNotFound(out[0].error)) << out[0].error;
  EXPECT_EQ(out[1].kind, Kind::kFailed);
  EXPECT_TRUE(absl::IsPermissionDenied(out[1].error)) << out[1].error;
  EXPECT_EQ(out[2].kind, Kind::kFailed);
  EXPECT_TRUE(IsTreeChanged(out[2].error)) << out[2].error;
  EXPECT_EQ(out[3].kind, Kind::kDeduped) << out[3].error;
  ASSERT_OK_AND_ASSIGN(bool frozen, Shared("a", "frozen"));
  EXPECT_FALSE(frozen);
  ASSERT_OK_AND_ASSIGN(bool ok, Shared("a", "ok"));
  EXPECT_TRUE(ok);
}

// "A non-OK status means the request as a whole could not be attempted: because of the
// reference (it cannot be opened ...)".
TEST_P(DedupeBackendContract, AVanishedReferenceFailsTheWholeRequestNotFound) {
  ASSERT_OK(world_->Write("a", "x"));
  ASSERT_OK(world_->Write("b", "x"));
  DedupeRequest request = Request("a", {"b"}, 1);
  ASSERT_OK(world_->Remove("a"));
  absl::StatusOr<std::vector<DedupeOutcome>> out = world_->backend()->Dedupe(request);
  EXPECT_TRUE(absl::IsNotFound(out.status())) << out.status();
}

// "... it changed": another size than the request's, or another inode at its path.
TEST_P(DedupeBackendContract, AChangedReferenceFailsTheWholeRequest) {
  const std::string data = PatternBytes(4096, 5);
  ASSERT_OK(world_->Write("a", data));
  ASSERT_OK(world_->Write("b", data));
  ASSERT_OK(world_->Write("r", data));
  absl::StatusOr<std::vector<DedupeOutcome>> resized =
      world_->backend()->Dedupe(Request("a", {"b"}, 4096 + 1));
  EXPECT_TRUE(absl::IsFailedPrecondition(resized.status())) << resized.status();
  DedupeRequest request = Request("r", {"b"}, 4096);
  ASSERT_OK(world_->Remove("r"));
  ASSERT_OK(world_->Write("r", data));
  absl::StatusOr<std::vector<DedupeOutcome>> replaced = world_->backend()->Dedupe(request);
  EXPECT_TRUE(IsTreeChanged(replaced.status())) << replaced.status();
}

INSTANTIATE_TEST_SUITE_P(Impls, DedupeBackendContract,
                         ::testing::Values(Impl::kFake, Impl::kNative), ImplName);

}  // namespace
}  // namespace testing
}  // namespace btrdupd
