#include "tests/uml/bridge/pci-over-virtio.h"

#include <unistd.h>

#include <cstring>
#include <vector>

#include "servers/runtime/chain-io.h"

namespace cellvisor::uml {

namespace {

// virtio_pcidev's operations and message header.
enum Op : uint8_t {
  CFG_READ = 1,
  CFG_WRITE = 2,
  MMIO_READ = 3,
  MMIO_WRITE = 4,
  MMIO_MEMSET = 5,
  INT = 6,
  MSI = 7,
};

struct Message {
  uint8_t op;
  uint8_t bar;
  uint16_t reserved;
  uint32_t size;
  uint64_t address;
} __attribute__((packed));

constexpr uint32_t MAX_ACCESS = 1u << 20;  // One access: at most a memcpy_fromio of 1 MiB.

uint64_t loadLittleEndian(std::span<const uint8_t> bytes) {
  uint64_t value = 0;
  std::memcpy(&value, bytes.data(), bytes.size() < 8 ? bytes.size() : 8);
  return value;
}

// The widest naturally aligned access (8, 4, 2 or 1 bytes) at `offset`
// that fits in `left`.
uint8_t accessWidth(uint64_t offset, uint64_t left) {
  for (uint8_t width : {8, 4, 2}) {
    if (left >= width && offset % width == 0) return width;
  }
  return 1;
}

}  // namespace

void PciOverVirtio::serveCommands() {
  auto* ring = link_.queue(COMMAND_QUEUE).ring.get();
  if (ring == nullptr) return;
  DescriptorChain chain;
  bool any = false;
  for (;;) {
    SplitVirtqueue::Pop popped = ring->pop(chain);
    if (popped == SplitVirtqueue::Pop::EMPTY || popped == SplitVirtqueue::Pop::BROKEN) break;
    uint32_t written = 0;
    Message message{};
    if (popped == SplitVirtqueue::Pop::CHAIN &&
        gather(chain, 0, {reinterpret_cast<uint8_t*>(&message), sizeof(message)})) {
      uint64_t extra = chain.readableBytes - sizeof(message);
      std::vector<uint8_t> data(extra < MAX_ACCESS ? extra : MAX_ACCESS);
      gather(chain, sizeof(message), data);
      uint64_t room = chain.writableBytes < MAX_ACCESS ? chain.writableBytes : MAX_ACCESS;
      std::vector<uint8_t> reply(room, 0xff);
      written = execute(message.op, message.bar, message.size, message.address, data, reply);
      scatter(chain, 0, {reply.data(), written});
    }
    ring->pushUsed(chain.head, written);
    any = true;
  }
  if (any) link_.notify(COMMAND_QUEUE);
}

uint32_t PciOverVirtio::execute(uint8_t op, uint8_t bar, uint32_t size, uint64_t address,
                                std::span<const uint8_t> data, std::span<uint8_t> reply) {
  switch (op) {
    case CFG_READ: {
      if (size > 8 || size > reply.size() || address >= 4096) return 0;
      for (uint32_t at = 0; at < size;) {
        uint8_t width = static_cast<uint8_t>(size - at >= 4 ? 4 : size - at);
        uint32_t value = proxy_.readConfig(static_cast<uint16_t>(address + at), width);
        std::memcpy(reply.data() + at, &value, width);
        at += width;
      }
      return size;
    }
    case CFG_WRITE: {
      if (size > 8 || size > data.size() || address >= 4096) return 0;
      for (uint32_t at = 0; at < size;) {
        uint8_t width = static_cast<uint8_t>(size - at >= 4 ? 4 : size - at);
        proxy_.writeConfig(static_cast<uint16_t>(address + at), width,
                           static_cast<uint32_t>(loadLittleEndian(data.subspan(at, width))));
        at += width;
      }
      return 0;
    }
    case MMIO_READ:
      if (size > reply.size()) return 0;
      readBar(bar, address, reply.first(size));
      return size;
    case MMIO_WRITE:
      if (size > data.size()) return 0;
      writeBar(bar, address, data.first(size));
      return 0;
    case MMIO_MEMSET: {
      if (data.empty() || size > MAX_ACCESS) return 0;
      std::vector<uint8_t> filled(size, data[0]);
      writeBar(bar, address, filled);
      return 0;
    }
    default:
      return 0;
  }
}

std::span<uint8_t> PciOverVirtio::sharedContents(uint8_t bar) {
  for (const auto& proxyBar : proxy_.bars()) {
    if (proxyBar.index != bar || !proxyBar.shared || proxyBar.mappedAt == 0) continue;
    auto found = wiring_.sharedBars.find(proxyBar.mappedAt);
    if (found != wiring_.sharedBars.end()) return found->second;
  }
  return {};
}

void PciOverVirtio::readBar(uint8_t bar, uint64_t offset, std::span<uint8_t> out) {
  if (auto shared = sharedContents(bar); !shared.empty()) {
    if (offset <= shared.size() && out.size() <= shared.size() - offset) {
      std::memcpy(out.data(), shared.data() + offset, out.size());
    }
    return;
  }
  for (uint64_t at = 0; at < out.size();) {
    uint8_t width = accessWidth(offset + at, out.size() - at);
    uint64_t value = proxy_.readBar(bar, offset + at, width);
    std::memcpy(out.data() + at, &value, width);
    at += width;
  }
}

void PciOverVirtio::writeBar(uint8_t bar, uint64_t offset, std::span<const uint8_t> data) {
  if (auto shared = sharedContents(bar); !shared.empty()) {
    if (offset <= shared.size() && data.size() <= shared.size() - offset) {
      std::memcpy(shared.data() + offset, data.data(), data.size());
    }
    return;
  }
  // A write where the proxy placed a doorbell is what KVM's ioeventfd would
  // have caught: it only signals the queue's eventfd.
  for (const auto& proxyBar : proxy_.bars()) {
    if (proxyBar.index != bar || proxyBar.mappedAt == 0) continue;
    auto doorbell = wiring_.doorbells.find(proxyBar.mappedAt + offset);
    if (doorbell != wiring_.doorbells.end()) {
      uint64_t one = 1;
      [[maybe_unused]] ssize_t written = ::write(doorbell->second, &one, sizeof(one));
      return;
    }
  }
  for (uint64_t at = 0; at < data.size();) {
    uint8_t width = accessWidth(offset + at, data.size() - at);
    proxy_.writeBar(bar, offset + at, width, loadLittleEndian(data.subspan(at, width)));
    at += width;
  }
}

void PciOverVirtio::raise(uint16_t vector) {
  auto route = wiring_.routes.find(vector);
  if (route == wiring_.routes.end()) return;  // Never programmed: nowhere to send it.
  pendingMsi_.push_back(route->second.second);
  deliverInterrupts();
}

void PciOverVirtio::deliverInterrupts() {
  auto* ring = link_.queue(INTERRUPT_QUEUE).ring.get();
  if (ring == nullptr) return;
  DescriptorChain chain;
  bool any = false;
  while (!pendingMsi_.empty()) {
    SplitVirtqueue::Pop popped = ring->pop(chain);
    if (popped == SplitVirtqueue::Pop::EMPTY || popped == SplitVirtqueue::Pop::BROKEN) break;
    uint32_t written = 0;
    if (popped == SplitVirtqueue::Pop::CHAIN) {
      // UML's MSI message is the interrupt number its domain allocated, as
      // the 32-bit data the device would have written.
      struct {
        Message header;
        uint32_t data;
      } __attribute__((packed)) msi{{MSI, 0, 0, 4, 0}, pendingMsi_.front()};
      if (scatter(chain, 0, {reinterpret_cast<const uint8_t*>(&msi), sizeof(msi)})) written = sizeof(msi);
      pendingMsi_.pop_front();
    }
    ring->pushUsed(chain.head, written);
    any = true;
  }
  if (any) link_.notify(INTERRUPT_QUEUE);
}

}  // namespace cellvisor::uml
