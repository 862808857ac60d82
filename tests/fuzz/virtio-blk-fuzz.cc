// libFuzzer target: arbitrary descriptor tables, avail rings, request
// headers and payloads, fed to the real virtio-blk model on the real
// virtqueue and transport code, with a real (memfd) backend, under ASan and
// UBSan. Every guest address the device follows must pass GuestMemory's
// bounds check; the fuzzer looks for inputs that get past it or break an
// invariant (crash, leak, undefined behaviour, a hang).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "base/guest-memory.h"
#include "proto/state-segment.h"
#include "servers/runtime/block-backend.h"
#include "servers/runtime/virtio-transport.h"
#include "servers/virtio-blk/blk-device.h"
#include "tests/fuzz/fuzz-queue.h"

namespace {

using namespace cellvisor;

constexpr uint64_t RAM = 2 << 20;
constexpr uint16_t QUEUE_SIZE = 16;
constexpr uint64_t DESCRIPTORS = 0x1000;
constexpr uint64_t AVAIL = 0x2000;
constexpr uint64_t USED = 0x3000;
constexpr uint64_t DATA = 0x10000;

struct Rig {
  GuestMemory memory{RAM};
  StateHeader header{};
  std::unique_ptr<VirtioState> state = std::make_unique<VirtioState>();
  BlkOptions options = parseBlkOptions("fuzz,queues=1,queue-size=16,ser=FUZZ");
  std::unique_ptr<BlockBackend> backend;
  std::unique_ptr<BlkDevice> device;
  std::unique_ptr<VirtioTransport> transport;
  DeviceStats stats;

  Rig() {
    int disk = memfd_create("fuzz-disk", MFD_CLOEXEC);
    if (ftruncate(disk, 1 << 20) != 0) abort();
    backend = std::make_unique<BlockBackend>(UniqueFd(disk), 64, false);
    device = std::make_unique<BlkDevice>(options, *backend);
    std::memset(state.get(), 0, sizeof(VirtioState));
    transport = std::make_unique<VirtioTransport>(*device, memory, header, *state);
    transport->start([](uint16_t) {});
    device->attach(*transport, stats);
    start();
  }

  void write(uint64_t offset, uint64_t value, uint8_t size) { transport->barWrite(0, offset, size, value); }
  void start() {
    write(0x14, 0, 1);
    write(0x14, 3, 1);
    write(0x08, 1, 4);
    write(0x0c, 1, 4);  // VERSION_1
    write(0x08, 0, 4);
    write(0x0c, (1u << 28) | (1u << 29) | (1u << 9) | (1u << 13) | (1u << 14), 4);
    write(0x14, 3 | 8, 1);
    write(0x16, 0, 2);
    write(0x18, QUEUE_SIZE, 2);
    write(0x20, DESCRIPTORS, 8);
    write(0x28, AVAIL, 8);
    write(0x30, USED, 8);
    write(0x1c, 1, 2);
    write(0x14, 3 | 8 | 4, 1);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Rig rig;
  if (!rig.transport->live()) rig.start();  // A previous input broke the ring: reset, as a driver would.
  // Layout of an input: how many heads to publish, the descriptor table
  // (zero-padded when short), avail entries, then buffer bytes.
  if (size < 1) return 0;
  uint8_t count = data[0] % (QUEUE_SIZE + 4);
  ++data;
  --size;
  uint8_t* guest = rig.memory.translate(0, RAM);
  size_t at = loadFuzzedQueue(guest, RAM, QUEUE_SIZE, DESCRIPTORS, AVAIL, count, data, size);
  size_t payload = std::min<size_t>(size - at, RAM - DATA);
  if (payload > 0) std::memcpy(guest + DATA, data + at, payload);
  rig.device->queueNotified(0);
  rig.device->drain();
  return 0;
}
