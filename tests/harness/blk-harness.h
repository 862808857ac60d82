// What the virtio-blk harness tests share: a temporary disk image and the
// harness started on it, with helpers for building and running requests.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tests/harness/virtio-harness.h"

namespace cellvisor::testing {

constexpr uint32_t IN = 0, OUT = 1, FLUSH = 4, GET_ID = 8, DISCARD = 11, WRITE_ZEROES = 13;
constexpr uint8_t S_OK = 0, S_IOERR = 1, S_UNSUPP = 2;
constexpr uint64_t DISK_BYTES = 16 << 20;
constexpr uint64_t ALL_FEATURES = ~0ull;

class TempDisk {
 public:
  explicit TempDisk(uint64_t size = DISK_BYTES) {
    path_ = ::testing::TempDir() + "/cellvisor-disk-XXXXXX";
    int fd = ::mkstemp(path_.data());
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
    ::close(fd);
  }
  ~TempDisk() { ::unlink(path_.c_str()); }
  TempDisk(const TempDisk&) = delete;
  TempDisk& operator=(const TempDisk&) = delete;
  UniqueFd open(int flags = O_RDWR) const { return UniqueFd(::open(path_.c_str(), flags | O_CLOEXEC)); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct BlkHarness {
  TempDisk disk;
  VirtioHarness harness;
  uint64_t offered;

  explicit BlkHarness(const std::string& options = "", uint16_t queues = 1, uint64_t accept = ALL_FEATURES,
                      int openFlags = O_RDWR, uint16_t queueSize = 128)
      : harness("virtio-blk", disk.path() + options + ",queues=" + std::to_string(queues),
                disk.open(openFlags), queues),
        offered(harness.initialize(accept, queueSize)) {}

  // One request: header, payload buffers, status. Returns (status, used length).
  struct Result {
    uint8_t status;
    uint32_t length;
    bool completed;
  };
  uint64_t header(uint32_t type, uint64_t sector) {
    uint64_t at = harness.allocate(16, 16);
    uint8_t* bytes = harness.host(at, 16);
    std::memcpy(bytes, &type, 4);
    std::memcpy(bytes + 8, &sector, 8);
    return at;
  }
  // A discard / write-zeroes segment.
  uint64_t segment(uint64_t sector, uint32_t count, uint32_t flags = 0) {
    uint64_t at = harness.allocate(16, 16);
    std::memcpy(harness.host(at, 8), &sector, 8);
    std::memcpy(harness.host(at + 8, 4), &count, 4);
    std::memcpy(harness.host(at + 12, 4), &flags, 4);
    return at;
  }
  Result run(uint16_t queue, std::vector<Buffer> buffers, bool indirect = false) {
    uint64_t status = harness.allocate(1, 1);
    *harness.host(status) = 0xee;
    buffers.push_back({status, 1, true});
    uint16_t head = harness.submit(queue, buffers, indirect);
    harness.kick(queue);
    for (const auto& completion : harness.waitForCompletions(queue)) {
      if (completion.head == head) return {*harness.host(status), completion.length, true};
    }
    return {0xff, 0, false};
  }
  Result io(uint32_t type, uint64_t sector, uint64_t data, uint32_t length, uint16_t queue = 0) {
    return run(queue, {{header(type, sector), 16, false}, {data, length, type == IN || type == GET_ID}});
  }
  uint64_t pattern(uint32_t length, uint32_t seed) {
    uint64_t at = harness.allocate(length);
    std::mt19937 random(seed);
    uint8_t* bytes = harness.host(at, length);
    for (uint32_t i = 0; i < length; ++i) bytes[i] = static_cast<uint8_t>(random());
    return at;
  }
};

}  // namespace cellvisor::testing
