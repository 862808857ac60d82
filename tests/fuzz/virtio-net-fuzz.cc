// libFuzzer target: arbitrary descriptor tables, avail rings and frames fed
// to the real virtio-net model on the real virtqueue and transport code,
// its tap a socketpair, under ASan and UBSan. Half the inputs transmit
// (the guest's chains are followed and written to the "tap"), half receive
// (a frame from the "tap" is copied into the guest's buffers). Every
// address the device follows must pass GuestMemory's bounds check.
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "base/guest-memory.h"
#include "proto/state-segment.h"
#include "servers/runtime/virtio-transport.h"
#include "servers/virtio-net/net-device.h"
#include "tests/fuzz/fuzz-queue.h"

namespace {

using namespace cellvisor;

constexpr uint64_t RAM = 2 << 20;
constexpr uint16_t QUEUE_SIZE = 16;
constexpr uint64_t QUEUE_AREA[2] = {0x1000,
                                    0x4000};  // Per queue: descriptors, avail (+0x1000), used (+0x2000).
constexpr uint64_t DATA = 0x10000;

struct Rig {
  GuestMemory memory{RAM};
  StateHeader header{};
  std::unique_ptr<VirtioState> state = std::make_unique<VirtioState>();
  int tap[2] = {-1, -1};  // [0]: the device's, [1]: the network's.
  std::unique_ptr<NetDevice> device;
  std::unique_ptr<VirtioTransport> transport;
  DeviceStats stats;

  Rig() {
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, tap) != 0) abort();
    device = std::make_unique<NetDevice>(parseNetOptions("tap0,queue-size=16"), tap[0],
                                         std::array<uint8_t, 6>{2, 0, 0, 0, 0, 1});
    std::memset(state.get(), 0, sizeof(VirtioState));
    transport = std::make_unique<VirtioTransport>(*device, memory, header, *state);
    transport->start([](uint16_t) {});
    device->attach(*transport, stats, [](bool) {});
    start();
  }

  void write(uint64_t offset, uint64_t value, uint8_t size) { transport->barWrite(0, offset, size, value); }
  void start() {
    write(0x14, 0, 1);
    write(0x14, 3, 1);
    write(0x08, 1, 4);
    write(0x0c, 1, 4);  // VERSION_1
    write(0x08, 0, 4);
    write(0x0c, (1u << 28) | (1u << 29) | (1u << 5) | (1u << 16), 4);
    write(0x14, 3 | 8, 1);
    for (uint16_t queue = 0; queue < 2; ++queue) {
      write(0x16, queue, 2);
      write(0x18, QUEUE_SIZE, 2);
      write(0x20, QUEUE_AREA[queue], 8);
      write(0x28, QUEUE_AREA[queue] + 0x1000, 8);
      write(0x30, QUEUE_AREA[queue] + 0x2000, 8);
      write(0x1c, 1, 2);
    }
    write(0x14, 3 | 8 | 4, 1);
  }
  void drainNetwork() {
    std::vector<uint8_t> frame(70000);
    while (::recv(tap[1], frame.data(), frame.size(), MSG_DONTWAIT) > 0) {
    }
    while (::recv(tap[0], frame.data(), frame.size(), MSG_DONTWAIT) > 0) {
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Rig rig;
  if (!rig.transport->live()) rig.start();  // A previous input broke a ring: reset, as a driver would.
  // An input: a control byte (queue, head count), the descriptor table
  // (zero-padded when short), avail entries, then a frame (receive) or
  // buffer bytes (transmit).
  if (size < 1) return 0;
  uint16_t queue = data[0] >> 7;
  uint8_t count = (data[0] & 0x7f) % (QUEUE_SIZE + 4);
  ++data;
  --size;
  uint8_t* guest = rig.memory.translate(0, RAM);
  size_t at = loadFuzzedQueue(guest, RAM, QUEUE_SIZE, QUEUE_AREA[queue], QUEUE_AREA[queue] + 0x1000, count,
                              data, size);
  size_t rest = size - at;
  if (queue == NetDevice::RX) {
    if (rest > 0) ::send(rig.tap[1], data + at, rest, MSG_DONTWAIT);  // A frame from the network.
    rig.device->queueNotified(NetDevice::RX);
    rig.device->onTapReadable();
  } else {
    size_t payload = std::min<size_t>(rest, RAM - DATA);
    if (payload > 0) std::memcpy(guest + DATA, data + at, payload);
    rig.device->queueNotified(NetDevice::TX);
  }
  rig.drainNetwork();
  return 0;
}
