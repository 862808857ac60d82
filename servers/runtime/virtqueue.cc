#include "servers/runtime/virtqueue.h"

#include <atomic>
#include <cstring>
#include <stdexcept>

#include "base/guest-memory.h"

namespace cellvisor {
namespace {

constexpr uint16_t DESC_F_NEXT = 1;
constexpr uint16_t DESC_F_WRITE = 2;
constexpr uint16_t DESC_F_INDIRECT = 4;
constexpr uint16_t AVAIL_F_NO_INTERRUPT = 1;
constexpr uint32_t DESCRIPTOR_BYTES = 16;

// Guest-shared 16-bit fields: one load/store each, with ordering.
uint16_t loadShared16(const uint8_t* at) {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(at), __ATOMIC_ACQUIRE);
}
void storeShared16(uint8_t* at, uint16_t value) {
  __atomic_store_n(reinterpret_cast<uint16_t*>(at), value, __ATOMIC_RELEASE);
}

}  // namespace

SplitVirtqueue::SplitVirtqueue(GuestMemory& memory, const VirtqueueLayout& layout,
                               VirtqueuePosition& position, bool indirect, bool eventIdx)
    : memory_(memory), layout_(layout), position_(position), indirect_(indirect), eventIdx_(eventIdx) {
  uint32_t size = layout.size;
  if (size == 0 || size > 32768 || (size & (size - 1)) != 0) throw std::invalid_argument("bad queue size");
  if (layout.descriptors % 16 || layout.driverArea % 2 || layout.deviceArea % 4) {
    throw std::invalid_argument("misaligned queue area");
  }
  descriptors_ = memory.translate(layout.descriptors, uint64_t{DESCRIPTOR_BYTES} * size);
  avail_ = memory.translate(layout.driverArea, 6 + 2ull * size);
  used_ = memory.translate(layout.deviceArea, 6 + 8ull * size);
  if (!descriptors_ || !avail_ || !used_) throw std::invalid_argument("queue areas are outside guest RAM");
}

uint16_t SplitVirtqueue::pending() const {
  return static_cast<uint16_t>(loadShared16(avail_ + 2) - position_.lastAvail);
}

uint16_t SplitVirtqueue::publishedUsed() const {
  return loadShared16(used_ + 2);
}

SplitVirtqueue::Pop SplitVirtqueue::peek(DescriptorChain& chain) {
  uint16_t availIdx = loadShared16(avail_ + 2);
  uint16_t waiting = static_cast<uint16_t>(availIdx - position_.lastAvail);
  if (waiting == 0) {
    // Ask for a kick, then look once more: the driver may have added a
    // request after our first look but before it saw the new event index,
    // and would then not kick.
    publishAvailEvent();
    availIdx = loadShared16(avail_ + 2);
    waiting = static_cast<uint16_t>(availIdx - position_.lastAvail);
    if (waiting == 0) return Pop::EMPTY;
  }
  if (waiting > layout_.size) return Pop::BROKEN;       // The driver claims more than the ring holds.
  std::atomic_thread_fence(std::memory_order_acquire);  // Ring entries after the index.
  uint16_t head = loadShared16(avail_ + 4 + 2 * (position_.lastAvail % layout_.size));
  if (head >= layout_.size) return Pop::BROKEN;  // No way to even name this request.

  chain.clear(head);
  return walk(descriptors_, layout_.size, head, false, chain) ? Pop::CHAIN : Pop::BAD_CHAIN;
}

bool SplitVirtqueue::chainAt(uint16_t head, DescriptorChain& chain) {
  if (head >= layout_.size) return false;
  chain.clear(head);
  return walk(descriptors_, layout_.size, head, false, chain);
}

bool SplitVirtqueue::walk(const uint8_t* table, uint32_t count, uint16_t first, bool isIndirect,
                          DescriptorChain& chain) {
  uint16_t index = first;
  // A chain visits each descriptor at most once; more steps mean a loop.
  for (uint32_t steps = 0; steps < count; ++steps) {
    if (index >= count) return false;
    Descriptor descriptor;
    std::memcpy(&descriptor, table + uint64_t{index} * DESCRIPTOR_BYTES,
                sizeof(descriptor));  // Copy, then check.
    if (descriptor.flags & DESC_F_INDIRECT) {
      if (!indirect_ || isIndirect || (descriptor.flags & DESC_F_NEXT)) return false;
      if (descriptor.length == 0 || descriptor.length % DESCRIPTOR_BYTES != 0 ||
          descriptor.length / DESCRIPTOR_BYTES > MAX_INDIRECT || !chain.readable.empty() ||
          !chain.writable.empty()) {
        return false;
      }
      const uint8_t* indirectTable = memory_.translate(descriptor.address, descriptor.length);
      if (indirectTable == nullptr) return false;
      return walk(indirectTable, descriptor.length / DESCRIPTOR_BYTES, 0, true, chain);
    }
    if (!addBuffer(descriptor, chain)) return false;
    if (!(descriptor.flags & DESC_F_NEXT)) return true;
    index = descriptor.next;
  }
  return false;
}

bool SplitVirtqueue::addBuffer(const Descriptor& descriptor, DescriptorChain& chain) {
  uint8_t* host = memory_.translate(descriptor.address, descriptor.length);
  if (host == nullptr && descriptor.length != 0) return false;
  if (uint64_t{descriptor.length} + chain.readableBytes + chain.writableBytes > MAX_CHAIN_BYTES) return false;
  std::span<uint8_t> buffer(host, descriptor.length);
  if (descriptor.flags & DESC_F_WRITE) {
    chain.writable.push_back(buffer);
    chain.writableBytes += descriptor.length;
  } else {
    if (!chain.writable.empty()) return false;  // Readable buffers must come first.
    chain.readable.push_back(buffer);
    chain.readableBytes += descriptor.length;
  }
  return true;
}

void SplitVirtqueue::pushUsed(uint16_t head, uint32_t writtenBytes) {
  uint8_t* element = used_ + 4 + 8 * (position_.used % layout_.size);
  uint32_t id = head;
  std::memcpy(element, &id, 4);
  std::memcpy(element + 4, &writtenBytes, 4);
  ++position_.used;
  std::atomic_thread_fence(std::memory_order_release);  // Element before index.
  storeShared16(used_ + 2, position_.used);
}

bool SplitVirtqueue::shouldInterrupt() {
  std::atomic_thread_fence(std::memory_order_seq_cst);  // Our used index before their event index.
  uint16_t newUsed = position_.used;
  uint16_t oldUsed = position_.lastSignalledUsed;
  if (newUsed == oldUsed) return false;
  bool notify;
  if (eventIdx_) {
    uint16_t usedEvent = loadShared16(avail_ + 4 + 2 * layout_.size);
    notify = static_cast<uint16_t>(newUsed - usedEvent - 1) < static_cast<uint16_t>(newUsed - oldUsed);
  } else {
    notify = !(loadShared16(avail_) & AVAIL_F_NO_INTERRUPT);
  }
  position_.lastSignalledUsed = newUsed;
  return notify;
}

void SplitVirtqueue::publishAvailEvent() {
  if (eventIdx_) storeShared16(used_ + 4 + 8 * layout_.size, position_.lastAvail);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace cellvisor
