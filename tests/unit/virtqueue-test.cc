// The device side of a split virtqueue against a hostile driver: rings and
// descriptor tables are built by hand in real guest RAM, and every chain the
// driver could offer either parses into exactly its buffers or is refused
// (BAD_CHAIN for one request, BROKEN for the ring).
#include "servers/runtime/virtqueue.h"

#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>

#include "base/guest-memory.h"
#include "core/arch/x86/address-map.h"

namespace cellvisor {
namespace {

constexpr uint16_t NEXT = 1;
constexpr uint16_t WRITE = 2;
constexpr uint16_t INDIRECT = 4;
constexpr uint64_t RAM = 4 * layout::MiB;

struct Descriptor {
  uint64_t address;
  uint32_t length;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Descriptor) == 16);

// A queue laid out as a driver would: descriptor table, avail ring and used
// ring in guest RAM, buffers further up.
struct VirtqueueTest : ::testing::Test {
  static constexpr uint64_t DESCRIPTORS = 0x1000;
  static constexpr uint64_t AVAIL = 0x8000;
  static constexpr uint64_t USED = 0x9000;
  static constexpr uint64_t INDIRECT_TABLE = 0xc000;
  static constexpr uint64_t BUFFERS = 0x10000;

  GuestMemory memory{RAM};
  VirtqueuePosition position{};
  uint16_t size = 8;

  VirtqueueLayout queueLayout() const { return {size, DESCRIPTORS, AVAIL, USED}; }
  SplitVirtqueue makeQueue(bool indirect = false, bool eventIdx = false) {
    return SplitVirtqueue(memory, queueLayout(), position, indirect, eventIdx);
  }

  void describe(uint16_t index, uint64_t address, uint32_t length, uint16_t flags = 0, uint16_t next = 0,
                uint64_t table = DESCRIPTORS) {
    memory.writeObject(table + 16ull * index, Descriptor{address, length, flags, next});
  }
  uint16_t availIdx() {
    uint16_t idx;
    memory.read(AVAIL + 2, {reinterpret_cast<uint8_t*>(&idx), 2});
    return idx;
  }
  void setAvailIdx(uint16_t idx) { memory.writeObject<uint16_t>(AVAIL + 2, idx); }
  // Puts `head` in the next avail slot and publishes it.
  void offer(uint16_t head) {
    uint16_t idx = availIdx();
    memory.writeObject<uint16_t>(AVAIL + 4 + 2ull * (idx % size), head);
    setAvailIdx(static_cast<uint16_t>(idx + 1));
  }
  uint16_t usedIdx() {
    uint16_t idx;
    memory.read(USED + 2, {reinterpret_cast<uint8_t*>(&idx), 2});
    return idx;
  }
  std::pair<uint32_t, uint32_t> usedElement(uint16_t slot) {
    uint32_t element[2];
    memory.read(USED + 4 + 8ull * slot, {reinterpret_cast<uint8_t*>(element), 8});
    return {element[0], element[1]};
  }
  // used_event lives after the avail ring, avail_event after the used ring.
  void setUsedEvent(uint16_t event) { memory.writeObject<uint16_t>(AVAIL + 4 + 2ull * size, event); }
  uint16_t availEvent() {
    uint16_t event;
    memory.read(USED + 4 + 8ull * size, {reinterpret_cast<uint8_t*>(&event), 2});
    return event;
  }

  // Offers a one-descriptor chain through head 0 and expects it refused.
  void expectBadChainAtHead(uint16_t head, bool indirect = false) {
    auto queue = makeQueue(indirect);
    offer(head);
    DescriptorChain chain;
    EXPECT_EQ(queue.pop(chain), SplitVirtqueue::Pop::BAD_CHAIN);
    EXPECT_EQ(chain.head, head) << "a bad chain still names its head, so it can be completed";
    EXPECT_EQ(position.lastAvail, 1) << "a bad chain is taken, not retried forever";
    EXPECT_EQ(queue.pop(chain), SplitVirtqueue::Pop::EMPTY);
  }
};

TEST_F(VirtqueueTest, ReadableThenWritableChainYieldsItsBuffers) {
  auto queue = makeQueue();
  describe(0, BUFFERS, 16, NEXT, 3);
  describe(3, BUFFERS + 0x100, 32, NEXT, 5);
  describe(5, BUFFERS + 0x200, 64, WRITE);
  offer(0);
  EXPECT_EQ(queue.pending(), 1);

  DescriptorChain chain;
  ASSERT_EQ(queue.pop(chain), SplitVirtqueue::Pop::CHAIN);
  EXPECT_EQ(chain.head, 0);
  ASSERT_EQ(chain.readable.size(), 2u);
  ASSERT_EQ(chain.writable.size(), 1u);
  EXPECT_EQ(chain.readable[0].data(), memory.translate(BUFFERS, 16));
  EXPECT_EQ(chain.readable[0].size(), 16u);
  EXPECT_EQ(chain.readable[1].data(), memory.translate(BUFFERS + 0x100, 32));
  EXPECT_EQ(chain.readable[1].size(), 32u);
  EXPECT_EQ(chain.writable[0].data(), memory.translate(BUFFERS + 0x200, 64));
  EXPECT_EQ(chain.writable[0].size(), 64u);
  EXPECT_EQ(chain.readableBytes, 48u);
  EXPECT_EQ(chain.writableBytes, 64u);
  EXPECT_EQ(queue.pending(), 0);
  EXPECT_EQ(position.lastAvail, 1);
  EXPECT_EQ(queue.pop(chain), SplitVirtqueue::Pop::EMPTY);

  // What the device writes lands in guest RAM where the driver pointed.
  std::memset(chain.writable[0].data(), 0xab, 64);
  uint8_t seen[64];
  memory.read(BUFFERS + 0x200, seen);
  for (uint8_t byte : seen) ASSERT_EQ(byte, 0xab);
}

TEST_F(VirtqueueTest, ReusedChainObjectForgetsThePreviousRequest) {
  auto queue = makeQueue();
  describe(0, BUFFERS, 100, NEXT, 1);
  describe(1, BUFFERS + 0x100, 200, WRITE);
  describe(2, BUFFERS + 0x400, 8);
  offer(0);
  offer(2);
  DescriptorChain chain;
  ASSERT_EQ(queue.pop(chain), SplitVirtqueue::Pop::CHAIN);
  ASSERT_EQ(queue.pop(chain), SplitVirtqueue::Pop::CHAIN);
  EXPECT_EQ(chain.head, 2);
  EXPECT_EQ(chain.readable.size(), 1u);
  EXPECT_TRUE(chain.writable.empty());
  EXPECT_EQ(chain.readableBytes, 8u);
  EXPECT_EQ(chain.writableBytes, 0u);
}

TEST_F(VirtqueueTest, PeekLeavesTheRequestUntilConsumed) {
  auto queue = makeQueue();
  describe(4, BUFFERS, 8);
  offer(4);
  DescriptorChain chain;
  ASSERT_EQ(queue.peek(chain), SplitVirtqueue::Pop::CHAIN);
  ASSERT_EQ(queue.peek(chain), SplitVirtqueue::Pop::CHAIN);
  EXPECT_EQ(chain.head, 4);
  EXPECT_EQ(queue.pending(), 1);
  queue.consume();
  EXPECT_EQ(queue.pending(), 0);
  EXPECT_EQ(queue.peek(chain), SplitVirtqueue::Pop::EMPTY);
}

TEST_F(VirtqueueTest, AvailIndexWrapsAround) {
  // A position carried over from a long-running queue (the state segment).
  position.lastAvail = 0xffff;
  setAvailIdx(0xffff);
  auto queue = makeQueue();
  describe(1, BUFFERS, 1);
  describe(2, BUFFERS, 2);
  offer(1);  // Slot 0xffff % 8 = 7.
  offer(2);  // Slot 0.
  EXPECT_EQ(availIdx(), 1);
  EXPECT_EQ(queue.pending(), 2);
  DescriptorChain chain;
  ASSERT_EQ(queue.pop(chain), SplitVirtqueue::Pop::CHAIN);
  EXPECT_EQ(chain.head, 1);
  ASSERT_EQ(queue.pop(chain), SplitVirtqueue::Pop::CHAIN);
  EXPECT_EQ(chain.head, 2);
  EXPECT_EQ(position.lastAvail, 1);
}

TEST_F(VirtqueueTest, ChainUsingEveryDescriptorIsNoLoop) {
  auto queue = makeQueue();
  for (uint16_t i = 0; i < size; ++i) {
    describe(i, BUFFERS + 0x100ull * i, 4, i + 1 < size ? NEXT : 0, static_cast<uint16_t>(i + 1));
  }
  offer(0);
  DescriptorChain chain;
  ASSERT_EQ(queue.pop(chain), SplitVirtqueue::Pop::CHAIN);
  EXPECT_EQ(chain.readable.size(), size);
  EXPECT_EQ(chain.readableBytes, 4u * size);
}

TEST_F(VirtqueueTest, IndirectTableIsFollowed) {
  auto queue = makeQueue(/*indirect=*/true);
  describe(0, BUFFERS, 10, NEXT, 1, INDIRECT_TABLE);
  describe(1, BUFFERS + 0x1000, 20, WRITE | NEXT, 2, INDIRECT_TABLE);
  describe(2, BUFFERS + 0x2000, 30, WRITE, 0, INDIRECT_TABLE);
  describe(2, INDIRECT_TABLE, 3 * 16, INDIRECT);
  offer(2);
  DescriptorChain chain;
  ASSERT_EQ(queue.pop(chain), SplitVirtqueue::Pop::CHAIN);
  EXPECT_EQ(chain.head, 2);
  ASSERT_EQ(chain.readable.size(), 1u);
  ASSERT_EQ(chain.writable.size(), 2u);
  EXPECT_EQ(chain.readable[0].data(), memory.translate(BUFFERS, 10));
  EXPECT_EQ(chain.writable[1].data(), memory.translate(BUFFERS + 0x2000, 30));
  EXPECT_EQ(chain.readableBytes, 10u);
  EXPECT_EQ(chain.writableBytes, 50u);
}

TEST_F(VirtqueueTest, IndirectTableNeedsTheFeature) {
  describe(0, BUFFERS, 10, 0, 0, INDIRECT_TABLE);
  describe(1, INDIRECT_TABLE, 16, INDIRECT);
  expectBadChainAtHead(1, /*indirect=*/false);
}

TEST_F(VirtqueueTest, NestedIndirectIsRefused) {
  uint64_t inner = INDIRECT_TABLE + 0x100;
  describe(0, BUFFERS, 10, 0, 0, inner);
  describe(0, inner, 16, INDIRECT, 0, INDIRECT_TABLE);
  describe(0, INDIRECT_TABLE, 16, INDIRECT);
  expectBadChainAtHead(0, true);
}

TEST_F(VirtqueueTest, IndirectWithNextIsRefused) {
  describe(0, BUFFERS, 10, 0, 0, INDIRECT_TABLE);
  describe(0, INDIRECT_TABLE, 16, INDIRECT | NEXT, 1);
  describe(1, BUFFERS + 0x100, 10, WRITE);
  expectBadChainAtHead(0, true);
}

TEST_F(VirtqueueTest, IndirectAfterDirectDescriptorsIsRefused) {
  describe(0, BUFFERS, 10, 0, 0, INDIRECT_TABLE);
  describe(0, BUFFERS + 0x100, 10, NEXT, 1);
  describe(1, INDIRECT_TABLE, 16, INDIRECT);
  expectBadChainAtHead(0, true);
}

TEST_F(VirtqueueTest, IndirectTableOfBadLengthIsRefused) {
  for (uint32_t length : {0u, 15u, 24u, (SplitVirtqueue::MAX_INDIRECT + 1u) * 16u}) {
    SCOPED_TRACE(length);
    position = {};
    setAvailIdx(0);
    describe(0, INDIRECT_TABLE, length, INDIRECT);
    expectBadChainAtHead(0, true);
  }
}

TEST_F(VirtqueueTest, IndirectTableOfMaximumLengthIsAccepted) {
  auto queue = makeQueue(true);
  for (uint16_t i = 0; i < SplitVirtqueue::MAX_INDIRECT; ++i) {
    bool last = i + 1 == SplitVirtqueue::MAX_INDIRECT;
    describe(i, BUFFERS, 1, last ? 0 : NEXT, static_cast<uint16_t>(i + 1), INDIRECT_TABLE);
  }
  describe(0, INDIRECT_TABLE, SplitVirtqueue::MAX_INDIRECT * 16u, INDIRECT);
  offer(0);
  DescriptorChain chain;
  ASSERT_EQ(queue.pop(chain), SplitVirtqueue::Pop::CHAIN);
  EXPECT_EQ(chain.readable.size(), SplitVirtqueue::MAX_INDIRECT);
}

TEST_F(VirtqueueTest, IndirectTableOutsideRamIsRefused) {
  describe(0, RAM - 16, 32, INDIRECT);
  expectBadChainAtHead(0, true);
}

TEST_F(VirtqueueTest, LoopInsideIndirectTableIsRefused) {
  describe(0, BUFFERS, 1, NEXT, 1, INDIRECT_TABLE);
  describe(1, BUFFERS, 1, NEXT, 0, INDIRECT_TABLE);
  describe(0, INDIRECT_TABLE, 32, INDIRECT);
  expectBadChainAtHead(0, true);
}

TEST_F(VirtqueueTest, NextOutsideIndirectTableIsRefused) {
  describe(0, BUFFERS, 1, NEXT, 2, INDIRECT_TABLE);  // The table has two entries.
  describe(1, BUFFERS, 1, 0, 0, INDIRECT_TABLE);
  describe(2, BUFFERS, 1, 0, 0, INDIRECT_TABLE);  // Would be found by an unbounded walk.
  describe(0, INDIRECT_TABLE, 32, INDIRECT);
  expectBadChainAtHead(0, true);
}

TEST_F(VirtqueueTest, NextIndexOutOfRangeIsRefused) {
  describe(0, BUFFERS, 8, NEXT, 8);  // The queue has 8 descriptors: 0-7.
  expectBadChainAtHead(0);
}

TEST_F(VirtqueueTest, LoopInChainIsRefused) {
  describe(0, BUFFERS, 8, NEXT, 1);
  describe(1, BUFFERS, 8, NEXT, 2);
  describe(2, BUFFERS, 8, NEXT, 1);
  expectBadChainAtHead(0);
}

TEST_F(VirtqueueTest, SelfLoopIsRefused) {
  describe(6, BUFFERS, 8, NEXT, 6);
  expectBadChainAtHead(6);
}

TEST_F(VirtqueueTest, BufferOutsideRamIsRefused) {
  describe(0, RAM - 8, 16);  // Runs past the end of RAM.
  expectBadChainAtHead(0);
}

TEST_F(VirtqueueTest, BufferThatWrapsTheAddressSpaceIsRefused) {
  describe(0, BUFFERS, 8, NEXT, 1);
  describe(1, ~0ull - 4, 16, WRITE);
  expectBadChainAtHead(0);
}

TEST_F(VirtqueueTest, WritableBeforeReadableIsRefused) {
  describe(0, BUFFERS, 8, WRITE | NEXT, 1);
  describe(1, BUFFERS + 0x100, 8);
  expectBadChainAtHead(0);
}

TEST_F(VirtqueueTest, ChainLongerThanTheLimitIsRefused) {
  // 43 descriptors of 3 MiB each (all over the same RAM): 129 MiB > 128 MiB.
  size = 64;
  constexpr uint32_t PIECE = 3 << 20;
  constexpr uint16_t PIECES = SplitVirtqueue::MAX_CHAIN_BYTES / PIECE + 1;
  for (uint16_t i = 0; i < PIECES; ++i) {
    describe(i, RAM - PIECE, PIECE, i + 1 < PIECES ? NEXT : 0, static_cast<uint16_t>(i + 1));
  }
  expectBadChainAtHead(0);

  // One descriptor fewer is within the limit.
  position = {};
  setAvailIdx(0);
  describe(PIECES - 2, RAM - PIECE, PIECE);
  auto queue = makeQueue();
  offer(0);
  DescriptorChain chain;
  ASSERT_EQ(queue.pop(chain), SplitVirtqueue::Pop::CHAIN);
  EXPECT_EQ(chain.readableBytes, uint64_t{PIECE} * (PIECES - 1));
}

TEST_F(VirtqueueTest, HeadOutOfRangeBreaksTheRing) {
  auto queue = makeQueue();
  offer(8);
  DescriptorChain chain;
  EXPECT_EQ(queue.pop(chain), SplitVirtqueue::Pop::BROKEN);
  EXPECT_EQ(position.lastAvail, 0) << "a broken ring is not consumed";
}

TEST_F(VirtqueueTest, AvailIndexFurtherAheadThanTheRingHoldsBreaksIt) {
  auto queue = makeQueue();
  describe(0, BUFFERS, 8);
  setAvailIdx(static_cast<uint16_t>(size + 1));
  DescriptorChain chain;
  EXPECT_EQ(queue.pop(chain), SplitVirtqueue::Pop::BROKEN);
  EXPECT_EQ(position.lastAvail, 0);

  // Exactly a full ring is fine.
  setAvailIdx(size);
  EXPECT_EQ(queue.pop(chain), SplitVirtqueue::Pop::CHAIN);
}

TEST_F(VirtqueueTest, RingsOutsideRamAreRefusedAtConstruction) {
  auto build = [&](VirtqueueLayout queueLayout) {
    return SplitVirtqueue(memory, queueLayout, position, false, false);
  };
  EXPECT_THROW(build({8, RAM, AVAIL, USED}), std::invalid_argument);
  EXPECT_THROW(build({8, RAM - 64, AVAIL, USED}), std::invalid_argument) << "table runs past RAM";
  // The avail ring with used_event is 6 + 2 * size bytes, the used ring with avail_event 6 + 8 * size.
  EXPECT_THROW(build({8, DESCRIPTORS, RAM - 20, USED}), std::invalid_argument);
  EXPECT_NO_THROW(build({8, DESCRIPTORS, RAM - 22, USED}));
  EXPECT_THROW(build({8, DESCRIPTORS, AVAIL, RAM - 68}), std::invalid_argument);
  EXPECT_NO_THROW(build({8, DESCRIPTORS, AVAIL, RAM - 72}));
  EXPECT_THROW(build({8, DESCRIPTORS, AVAIL, 3 * layout::GiB}), std::invalid_argument);
  EXPECT_THROW(build({8, ~0ull & ~15ull, AVAIL, USED}), std::invalid_argument);
}

TEST_F(VirtqueueTest, BadSizesAndAlignmentAreRefusedAtConstruction) {
  auto build = [&](VirtqueueLayout queueLayout) {
    return SplitVirtqueue(memory, queueLayout, position, false, false);
  };
  EXPECT_THROW(build({0, DESCRIPTORS, AVAIL, USED}), std::invalid_argument);
  EXPECT_THROW(build({6, DESCRIPTORS, AVAIL, USED}), std::invalid_argument);
  EXPECT_THROW(build({65535, DESCRIPTORS, AVAIL, USED}), std::invalid_argument);
  EXPECT_THROW(build({8, DESCRIPTORS + 8, AVAIL, USED}), std::invalid_argument);
  EXPECT_THROW(build({8, DESCRIPTORS, AVAIL + 1, USED}), std::invalid_argument);
  EXPECT_THROW(build({8, DESCRIPTORS, AVAIL, USED + 2}), std::invalid_argument);
  EXPECT_NO_THROW(build({32768, 0x100000, 0x200000, 0x300000}));
}

TEST_F(VirtqueueTest, CompletionsFillTheUsedRing) {
  auto queue = makeQueue();
  queue.pushUsed(5, 512);
  EXPECT_EQ(usedIdx(), 1);
  EXPECT_EQ(queue.publishedUsed(), 1);
  EXPECT_EQ(usedElement(0), std::make_pair(5u, 512u));
  queue.pushUsed(2, 0);
  EXPECT_EQ(usedElement(1), std::make_pair(2u, 0u));
  EXPECT_EQ(usedIdx(), 2);
  EXPECT_EQ(position.used, 2);

  // The ring wraps by slot and the index by 2^16.
  for (uint32_t i = 2; i < 10; ++i) queue.pushUsed(static_cast<uint16_t>(i % size), i * 10);
  EXPECT_EQ(usedElement(1), std::make_pair(1u, 90u)) << "the tenth completion reuses slot 1";
  position.used = 0xffff;
  queue.pushUsed(3, 7);
  EXPECT_EQ(usedElement(0xffff % 8), std::make_pair(3u, 7u));
  EXPECT_EQ(usedIdx(), 0);
}

TEST_F(VirtqueueTest, ResetUsedRewindsToWhatTheDriverSees) {
  auto queue = makeQueue();
  queue.pushUsed(1, 1);
  queue.resetUsed(0);
  queue.pushUsed(2, 2);
  EXPECT_EQ(usedIdx(), 1);
  EXPECT_EQ(usedElement(0), std::make_pair(2u, 2u));
}

TEST_F(VirtqueueTest, InterruptUnlessTheDriverSuppressesIt) {
  auto queue = makeQueue();
  EXPECT_FALSE(queue.shouldInterrupt()) << "nothing was used";
  queue.pushUsed(0, 1);
  EXPECT_TRUE(queue.shouldInterrupt());
  EXPECT_FALSE(queue.shouldInterrupt()) << "nothing new since the last interrupt";

  memory.writeObject<uint16_t>(AVAIL, 1);  // VIRTQ_AVAIL_F_NO_INTERRUPT.
  queue.pushUsed(1, 1);
  EXPECT_FALSE(queue.shouldInterrupt());
  memory.writeObject<uint16_t>(AVAIL, 0);
  queue.pushUsed(2, 1);
  EXPECT_TRUE(queue.shouldInterrupt());
}

TEST_F(VirtqueueTest, EventIdxInterruptsWhenUsedPassesUsedEvent) {
  auto queue = makeQueue(false, /*eventIdx=*/true);
  memory.writeObject<uint16_t>(AVAIL, 1);  // Flags are ignored with EVENT_IDX.
  setUsedEvent(0);
  queue.pushUsed(0, 1);  // used 0 -> 1 crosses used_event 0.
  EXPECT_TRUE(queue.shouldInterrupt());

  setUsedEvent(4);
  queue.pushUsed(1, 1);
  queue.pushUsed(2, 1);  // used 1 -> 3: not past 4 yet.
  EXPECT_FALSE(queue.shouldInterrupt());
  queue.pushUsed(3, 1);
  queue.pushUsed(4, 1);
  queue.pushUsed(5, 1);  // used 3 -> 6 passes 4.
  EXPECT_TRUE(queue.shouldInterrupt());

  setUsedEvent(2);  // Already behind: no interrupt until used wraps all the way.
  queue.pushUsed(6, 1);
  EXPECT_FALSE(queue.shouldInterrupt());
}

TEST_F(VirtqueueTest, EventIdxAsksForAKickWhenEmpty) {
  memory.writeObject<uint16_t>(USED + 4 + 8ull * size, 0x5555);
  auto queue = makeQueue(false, true);
  describe(0, BUFFERS, 8);
  offer(0);
  offer(0);
  DescriptorChain chain;
  ASSERT_EQ(queue.pop(chain), SplitVirtqueue::Pop::CHAIN);
  ASSERT_EQ(queue.pop(chain), SplitVirtqueue::Pop::CHAIN);
  ASSERT_EQ(queue.pop(chain), SplitVirtqueue::Pop::EMPTY);
  EXPECT_EQ(availEvent(), 2) << "kick me when anything after what I took arrives";
}

TEST_F(VirtqueueTest, WithoutEventIdxAvailEventIsLeftAlone) {
  memory.writeObject<uint16_t>(USED + 4 + 8ull * size, 0x5555);
  auto queue = makeQueue();
  DescriptorChain chain;
  ASSERT_EQ(queue.pop(chain), SplitVirtqueue::Pop::EMPTY);
  queue.publishAvailEvent();
  EXPECT_EQ(availEvent(), 0x5555);
}

TEST_F(VirtqueueTest, ChainAtRereadsARequestTakenEarlier) {
  auto queue = makeQueue();
  describe(3, BUFFERS, 8, NEXT, 4);
  describe(4, BUFFERS + 0x100, 16, WRITE);
  DescriptorChain chain;
  ASSERT_TRUE(queue.chainAt(3, chain));
  EXPECT_EQ(chain.head, 3);
  EXPECT_EQ(chain.readableBytes, 8u);
  EXPECT_EQ(chain.writableBytes, 16u);
  EXPECT_FALSE(queue.chainAt(8, chain)) << "head out of range";
  describe(4, RAM, 16, WRITE);  // The driver changed it since.
  EXPECT_FALSE(queue.chainAt(3, chain));
  EXPECT_EQ(position.lastAvail, 0) << "re-reading takes nothing from the ring";
}

}  // namespace
}  // namespace cellvisor
