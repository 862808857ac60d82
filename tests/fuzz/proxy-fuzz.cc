// libFuzzer target over the core's side of a device server: the PCI proxy
// and its request channel (core/devices/) facing a hostile server. A thread
// plays the server on real rings, eventfds and state segment and answers
// each request as the input says: the right kind of reply, the wrong kind,
// a stale sequence number, an error, a hello declaring any BARs and
// doorbells, write effects routing any vectors and switching any
// doorbells, or bytes that are no message at all. The guest's side is the
// input too: configuration and BAR reads and writes. The core must stay
// up: no crash, no undefined behaviour, no hang, no mapping it was not
// asked for outside the BARs it placed.
#include <sys/eventfd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/devices/device-channel.h"
#include "core/devices/device-wiring.h"
#include "core/devices/pci-server-proxy.h"
#include "device.capnp.h"
#include "host/device-resources.h"
#include "tests/fuzz/fuzz-input.h"

namespace {

using namespace cellvisor;

// The input, read by the guest's side and by the server thread in turn.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : input_(data, size) {}
  uint8_t byte() {
    std::lock_guard lock(mutex_);
    return input_.byte();
  }
  uint64_t bytes(unsigned count) {
    std::lock_guard lock(mutex_);
    return input_.bytes(count);
  }
  bool empty() {
    std::lock_guard lock(mutex_);
    return input_.empty();
  }

 private:
  std::mutex mutex_;
  fuzzing::FuzzInput input_;
};

// Stands in for KVM: accepts whatever the proxy wires, checks it is sane.
class CheckingWiring : public DeviceWiring {
 public:
  void mapBar(uint64_t, uint64_t size, bool, IoDevice&) override {
    if (size == 0) abort();  // The proxy refuses impossible BARs before this.
  }
  void unmapBar(uint64_t, bool) override {}
  void mapSharedBar(uint64_t, std::span<uint8_t> host) override {
    if (host.empty()) abort();
  }
  void unmapSharedBar(uint64_t) override {}
  void addDoorbell(int eventfd, uint64_t, uint8_t, bool) override {
    if (eventfd < 0) abort();
  }
  void removeDoorbell(int, uint64_t, uint8_t, bool) override {}
  void routeVector(uint16_t, int eventfd, uint64_t, uint32_t) override {
    if (eventfd < 0) abort();  // A vector the device has no interrupt fd for.
  }
};

constexpr uint16_t QUEUES = 2;
constexpr uint16_t VECTORS = 3;
constexpr uint64_t BAR_ADDRESS = 0xc000'0000;

// The hostile server: answers every request it reads as the input says.
class HostileServer {
 public:
  HostileServer(DeviceResources& resources, Input& input)
      : input_(input),
        wake_(resources.requestDoorbell()),
        channel_(resources.rings().replyWriter(), resources.rings().requestReader(),
                 resources.serverReplyDoorbell(), resources.serverRequestDoorbell()),
        thread_([this] { serve(); }) {}
  ~HostileServer() {
    stop_ = true;
    ringDoorbellPipe(wake_);  // Not a request: only ends the thread's wait at once.
    thread_.join();
  }

 private:
  void serve() {
    while (!stop_) {
      channel_.waitForDoorbell(std::chrono::milliseconds(2));
      try {
        while (auto request = channel_.tryReceive()) answer(request->root<proto::Request>());
      } catch (const ProtocolError& error) {
        // The core's own requests are well formed: this is a bug, and a
        // server thread that quietly stopped would only show as timeouts.
        fprintf(stderr, "hostile server: the core's request is broken: %s\n", error.what());
        abort();
      }
    }
  }

  void answer(proto::Request::Reader request) {
    uint8_t plan = input_.byte();
    uint64_t sequence = request.getSequence();
    if ((plan & 7) == 7) {
      // Bytes that need not be a message, then the real reply: the core
      // either refuses the junk (and the channel) or skips it. A server
      // that never answers is only a timeout, not worth the fuzzer's time.
      uint8_t junk[64];
      for (auto& byte : junk) byte = input_.byte();
      // Through the channel's own writer: a second writer on the ring would
      // keep a stale head and take the ring for full once the core has read
      // the junk (every later reply lost, every access a 10 s timeout).
      channel_.sendBytes(std::span<const uint8_t>(junk, 8 + input_.byte() % 56),
                         std::chrono::milliseconds(100));
    }
    if ((plan & 7) == 6) send(sequence - 1 - input_.byte(), plan, request);  // A stale one first.
    send((plan & 7) == 5 ? sequence + 1 : sequence, plan, request);
    if ((plan & 7) == 5) send(sequence, plan, request);  // One from the future, then ours.
  }

  void send(uint64_t sequence, uint8_t plan, proto::Request::Reader request) {
    capnp::MallocMessageBuilder builder;
    auto reply = builder.initRoot<proto::Reply>();
    reply.setSequence(sequence);
    bool wrongKind = (plan & 7) == 4;
    if ((plan & 7) == 3) {
      reply.setError("hostile server");
    } else if (request.isHello() != wrongKind) {
      auto hello = reply.initHello();
      hello.setServerProtocolVersion(input_.byte() == 0 ? 999 : proto::PROTOCOL_VERSION);
      hello.setServerName("hostile");
      auto bars = hello.initBars(input_.byte() % 4);
      for (auto bar : bars) {
        bar.setIndex(input_.byte());
        bar.setSize(input_.byte() < 200 ? uint64_t{1} << (input_.byte() % 40) : input_.bytes(8));
        bar.setKind(static_cast<proto::PciBar::Kind>(input_.byte() % 3));
        bar.setPrefetchable(input_.byte() & 1);
        if (input_.byte() & 1) bar.getBacking().setSharedMemory(input_.bytes(8));
      }
      auto doorbells = hello.initDoorbells(input_.byte() % 4);
      for (auto doorbell : doorbells) {
        doorbell.setBar(input_.byte() % 8);
        doorbell.setOffset(input_.bytes(2));
        doorbell.setLength(input_.byte() % 9);
        doorbell.setQueue(input_.byte() % 4);
        doorbell.setStartsOff(input_.byte() & 1);
      }
      hello.setMsixVectors(input_.byte() % 8);
    } else if (request.isConfigRead() || request.isBarRead() || request.isStats()) {
      reply.setValue(input_.bytes(8));
    } else {
      auto effects = reply.initDone();
      auto updates = effects.initMsixUpdates(input_.byte() % 4);
      for (auto update : updates) {
        update.setIndex(static_cast<uint16_t>(input_.bytes(2)));
        update.setAddress(input_.bytes(8));
        update.setData(static_cast<uint32_t>(input_.bytes(4)));
      }
      auto switches = effects.initDoorbellSwitches(input_.byte() % 3);
      for (auto change : switches) {
        change.setQueue(static_cast<uint16_t>(input_.bytes(2)));
        change.setOn(input_.byte() & 1);
      }
    }
    channel_.send(builder, std::chrono::milliseconds(100));
  }

  Input& input_;
  int wake_;
  MessageChannel channel_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input input(data, size);
  DeviceResources resources("fuzz-0.0", QUEUES, VECTORS);
  DeviceChannel channel(resources);
  channel.setServerGone([] { return false; });
  CheckingWiring wiring;
  HostileServer server(resources, input);
  std::unique_ptr<PciServerProxy> proxy;
  try {
    proxy = std::make_unique<PciServerProxy>(channel, wiring);
    for (const auto& bar : proxy->bars()) proxy->assignBar(bar.index, BAR_ADDRESS + 0x100000ull * bar.index);
    proxy->enableDecoding();
  } catch (const std::exception&) {
    return 0;  // Refused at hello: what a hostile hello should get.
  }
  // The guest's side: configuration and BAR accesses, whatever comes back.
  for (int access = 0; access < 16 && !input.empty(); ++access) {
    uint8_t head = input.byte();
    uint8_t width = static_cast<uint8_t>(1u << (head & 3));
    try {
      switch ((head >> 2) & 3) {
        case 0:
          proxy->readConfig(static_cast<uint16_t>(input.bytes(2) % 4096), std::min<uint8_t>(width, 4));
          break;
        case 1:
          proxy->writeConfig(static_cast<uint16_t>(input.bytes(2) % 4096), std::min<uint8_t>(width, 4),
                             static_cast<uint32_t>(input.bytes(4)));
          break;
        case 2:
          proxy->readBar(input.byte() % 6, input.bytes(4), width);
          break;
        default:
          proxy->writeBar(input.byte() % 6, input.bytes(4), width, input.bytes(8));
          break;
      }
    } catch (const DeviceUnavailable&) {
      // The server broke the protocol or refused: the access fails, the
      // core goes on.
    }
  }
  return 0;
}
