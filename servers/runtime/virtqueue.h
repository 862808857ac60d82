// A split virtqueue (virtio 1.x, 2.7) as the device side sees it, hardened
// against a hostile driver: every ring and buffer address is checked against
// guest RAM before use, descriptors are copied before they are validated,
// chains are bounded (loops, lengths, nesting), and a broken ring is
// reported instead of followed.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace cellvisor {

class GuestMemory;

struct VirtqueueLayout {
  uint16_t size = 0;  // Power of two.
  uint64_t descriptors = 0;
  uint64_t driverArea = 0;  // The avail ring.
  uint64_t deviceArea = 0;  // The used ring.
};

// Where a queue's progress lives: in the state segment, so a restarted
// server continues exactly where the previous one stopped.
struct VirtqueuePosition {
  uint16_t lastAvail;
  uint16_t used;
  uint16_t lastSignalledUsed;
  uint16_t reserved;
};

struct DescriptorChain {
  uint16_t head = 0;
  std::vector<std::span<uint8_t>> readable;  // Driver to device.
  std::vector<std::span<uint8_t>> writable;  // Device to driver.
  uint64_t readableBytes = 0;
  uint64_t writableBytes = 0;

  // Keeps the vectors' capacity: a chain object is reused for every request.
  void clear(uint16_t newHead) {
    head = newHead;
    readable.clear();
    writable.clear();
    readableBytes = writableBytes = 0;
  }
};

class SplitVirtqueue {
 public:
  static constexpr uint32_t MAX_CHAIN_BYTES = 128u << 20;
  static constexpr uint16_t MAX_INDIRECT = 1024;

  enum class Pop {
    CHAIN,      // `chain` is a valid request.
    EMPTY,      // Nothing new.
    BAD_CHAIN,  // `chain.head` is valid but the chain is not: complete it with an error.
    BROKEN,     // The ring itself is inconsistent: the device needs a reset.
  };

  // Throws std::invalid_argument if the layout is unusable (not in RAM, bad size).
  SplitVirtqueue(GuestMemory& memory, const VirtqueueLayout& layout, VirtqueuePosition& position,
                 bool indirect, bool eventIdx);

  // Reads the next request without taking it; consume() takes it. The
  // caller records the head as in flight in between, so a crash can never
  // lose a request that was taken.
  Pop peek(DescriptorChain& chain);
  void consume() { ++position_.lastAvail; }
  Pop pop(DescriptorChain& chain) {
    Pop result = peek(chain);
    if (result == Pop::CHAIN || result == Pop::BAD_CHAIN) consume();
    return result;
  }
  // Re-reads the chain at `head` (a request taken before a server restart
  // and never completed). False if the chain is no longer valid.
  bool chainAt(uint16_t head, DescriptorChain& chain);
  // Heads available but not yet popped (bounded by the queue size).
  uint16_t pending() const;
  void pushUsed(uint16_t head, uint32_t writtenBytes);
  // The used index as the driver sees it in guest memory.
  uint16_t publishedUsed() const;
  // Makes our used position match the driver-visible one (crash recovery).
  void resetUsed(uint16_t used) { position_.used = used; }
  // Whether the driver wants an interrupt for what was pushed since the last
  // call that returned true (EVENT_IDX aware).
  bool shouldInterrupt();
  // With EVENT_IDX, asks for a kick when anything after lastAvail arrives.
  void publishAvailEvent();
  uint16_t size() const { return layout_.size; }

 private:
  struct Descriptor {
    uint64_t address;
    uint32_t length;
    uint16_t flags;
    uint16_t next;
  };
  bool walk(const uint8_t* table, uint32_t count, uint16_t first, bool isIndirect, DescriptorChain& chain);
  bool addBuffer(const Descriptor& descriptor, DescriptorChain& chain);

  GuestMemory& memory_;
  VirtqueueLayout layout_;
  VirtqueuePosition& position_;
  bool indirect_;
  bool eventIdx_;
  const uint8_t* descriptors_;
  uint8_t* avail_;
  uint8_t* used_;
};

}  // namespace cellvisor
