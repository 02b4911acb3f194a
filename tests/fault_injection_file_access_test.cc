// FaultInjectionFileAccess (tests/testing/fault_injection_file_access.h) over the fake.

#include "tests/testing/fault_injection_file_access.h"

#include <errno.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "ioctl/errno_status.h"
#include "tests/testing/fake_file_access.h"
#include "tests/testing/status_macros.h"

namespace btrdupd {
namespace testing {
namespace {

FileRef Ref(const std::string& path, uint64_t ino) {
  FileRef ref;
  ref.path = path;
  ref.display = "/v/" + path;
  ref.ino = ino;
  return ref;
}

class FaultInjectionTest : public ::testing::Test {
 protected:
  FaultInjectionTest() {
    fake_.AddFile("/v/a", "aaaa", 1);
    fake_.AddFile("/v/b", "bbbb", 2);
  }
  FakeFileAccess fake_;
  FaultInjectionFileAccess faulty_{&fake_};
};

TEST_F(FaultInjectionTest, ReadOfTheChosenPathFailsWithTheChosenErrno) {
  Fault fault;
  fault.op = FileOp::kRead;
  fault.path = "a";
  faulty_.Inject(fault);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SequentialFile> a, faulty_.OpenForRead(Ref("a", 1)));
  char buf[8];
  absl::StatusOr<size_t> got = a->Read(buf, sizeof(buf));
  EXPECT_EQ(ErrnoOf(got.status()), EIO);
  EXPECT_EQ(faulty_.injected(), 1);
}

TEST_F(FaultInjectionTest, OtherPathsAndOperationsGoThrough) {
  Fault fault;
  fault.op = FileOp::kRead;
  fault.path = "a";
  faulty_.Inject(fault);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SequentialFile> b, faulty_.OpenForRead(Ref("b", 2)));
  char buf[8];
  ASSERT_OK_AND_ASSIGN(size_t got, b->Read(buf, sizeof(buf)));
  EXPECT_EQ(std::string(buf, got), "bbbb");
  EXPECT_OK(faulty_.Stat(Ref("a", 1)).status());
  EXPECT_EQ(faulty_.injected(), 0);
}

TEST_F(FaultInjectionTest, SkipsThenFailsTheGivenNumberOfCalls) {
  Fault fault;
  fault.op = FileOp::kStat;
  fault.err = ENOSPC;
  fault.skip = 1;
  fault.times = 2;
  faulty_.Inject(fault);
  EXPECT_OK(faulty_.Stat(Ref("a", 1)).status());
  EXPECT_EQ(ErrnoOf(faulty_.Stat(Ref("b", 2)).status()), ENOSPC);
  EXPECT_EQ(ErrnoOf(faulty_.Stat(Ref("a", 1)).status()), ENOSPC);
  EXPECT_OK(faulty_.Stat(Ref("a", 1)).status());
}

TEST_F(FaultInjectionTest, AFailedOpenDoesNotReachTheWrappedFileAccess) {
  Fault fault;
  fault.op = FileOp::kOpen;
  fault.times = -1;
  faulty_.Inject(fault);
  EXPECT_EQ(ErrnoOf(faulty_.OpenForRead(Ref("a", 1)).status()), EIO);
  EXPECT_EQ(ErrnoOf(faulty_.OpenForRead(Ref("a", 1)).status()), EIO);
  EXPECT_EQ(fake_.opens(), 0);
  faulty_.Clear();
  EXPECT_OK(faulty_.OpenForRead(Ref("a", 1)).status());
}

}  // namespace
}  // namespace testing
}  // namespace btrdupd
