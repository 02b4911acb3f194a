#include "tests/testing/files.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"

namespace btrdupd {
namespace testing {
namespace {

constexpr uint64_t kChunk = 1 << 20;

absl::Status PathError(absl::string_view what, absl::string_view path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

// splitmix64: a tiny, well-mixed generator; the pattern at byte i depends
// only on the seed and i / 8, so chunks can be produced independently.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Appends the pattern bytes [offset, offset + size) to `out`.
// REQUIRES: offset % 8 == 0.
void AppendPattern(uint64_t offset, uint64_t size, uint64_t seed, std::string* out) {
  const uint64_t key = Mix(seed);
  for (uint64_t i = 0; i < size; i += 8) {
    uint64_t word = Mix(key ^ ((offset + i) / 8));
    size_t n = static_cast<size_t>(std::min<uint64_t>(8, size - i));
    out->append(reinterpret_cast<const char*>(&word), n);
  }
}

absl::Status WriteAll(int fd, absl::string_view data, absl::string_view path) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return PathError("write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

std::string PatternBytes(uint64_t size, uint64_t seed) {
  std::string bytes;
  bytes.reserve(size);
  AppendPattern(0, size, seed, &bytes);
  return bytes;
}

absl::Status WriteFile(absl::string_view path, absl::string_view contents) {
  const std::string p(path);
  int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return PathError("open", path);
  absl::Cleanup closer = [fd] { close(fd); };
  return WriteAll(fd, contents, path);
}

absl::Status WritePatternFile(absl::string_view path, uint64_t size, uint64_t seed) {
  const std::string p(path);
  int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return PathError("open", path);
  absl::Cleanup closer = [fd] { close(fd); };
  std::string chunk;
  for (uint64_t offset = 0; offset < size; offset += kChunk) {
    chunk.clear();
    AppendPattern(offset, std::min(kChunk, size - offset), seed, &chunk);
    absl::Status written = WriteAll(fd, chunk, path);
    if (!written.ok()) return written;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(absl::string_view path) {
  const std::string p(path);
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return PathError("open", path);
  absl::Cleanup closer = [fd] { close(fd); };
  std::string contents;
  char buffer[65536];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return PathError("read", path);
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  return contents;
}

size_t ResidentPages(const std::string& path, size_t size) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SIZE_MAX;
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);  // the mapping keeps the file
  if (map == MAP_FAILED) return SIZE_MAX;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((size + page - 1) / page);
  size_t resident = SIZE_MAX;
  if (mincore(map, size, vec.data()) == 0) {
    resident = 0;
    for (unsigned char v : vec) resident += v & 1;
  }
  munmap(map, size);
  return resident;
}

}  // namespace testing
}  // namespace btrdupd
