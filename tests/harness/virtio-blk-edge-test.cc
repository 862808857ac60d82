// Driver-harness tests at the edges of the virtio-blk server: the largest
// queues the options accept, a reset while the backend is busy, io_uring
// opcodes a compromised server might try, a backend ring that fails, and a
// bootstrap whose counts do not fit the device.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "core/devices/device-catalog.h"
#include "servers/runtime/virtio-transport.h"
#include "tests/harness/blk-harness.h"

namespace cellvisor::testing {
namespace {

constexpr uint32_t MAX_SEGMENTS = 32;  // The device's max_discard_seg.

// What is no disk is refused where the image is opened, naming the path,
// before any server starts; and a server handed one refuses it too.
TEST(VirtioBlkImage, SpawnerRefusesWhatIsNoDisk) {
  TempDisk empty(0);
  std::string fifo = ::testing::TempDir() + "/cellvisor-fifo-" + std::to_string(::getpid());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  struct Case {
    std::string options;
    std::string message;
  };
  std::vector<Case> cases = {
      {"/proc/self/mem", "/proc/self/mem: the disk image is empty (0 bytes)"},
      {empty.path(), empty.path() + ": the disk image is empty (0 bytes)"},
      {"/dev/null", "/dev/null: not a regular file or block device"},
      {fifo, fifo + ": not a regular file or block device"},
      {fifo + ",ro", fifo + ": not a regular file or block device"},  // Opening it must not block.
  };
  for (const auto& c : cases) {
    PciSlotConfig slot{4, 0, "virtio-blk", c.options};
    try {
      prepareServerLaunch(slot, 1, "enforce");
      ADD_FAILURE() << c.options << " was accepted";
    } catch (const std::invalid_argument& error) {
      EXPECT_EQ(std::string(error.what()), "-s 4:0,virtio-blk: " + c.message);
    }
  }
  ::unlink(fifo.c_str());
}

TEST(VirtioBlkImage, ServerRefusesAnEmptyImage) {
  TempDisk empty(0);
  EXPECT_THROW(VirtioHarness("virtio-blk", empty.path() + ",queues=1", empty.open(), 1), DeviceUnavailable);
}

}  // namespace
}  // namespace cellvisor::testing
