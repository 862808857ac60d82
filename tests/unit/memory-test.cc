// Guest RAM layout around the PCI hole, bounds-checked translation, e820.
#include <gtest/gtest.h>

#include "base/guest-memory.h"
#include "core/arch/x86/address-map.h"
#include "core/boot/e820.h"

namespace cellvisor {
namespace {

TEST(GuestMemory, SmallVmIsOneRegion) {
  GuestMemory memory(256 << 20);
  ASSERT_EQ(memory.regions().size(), 1u);
  EXPECT_EQ(memory.lowRamEnd(), 256u << 20);
  EXPECT_NE(memory.translate(0, 256 << 20), nullptr);
  EXPECT_EQ(memory.translate((256 << 20) - 1, 2), nullptr);
  EXPECT_EQ(memory.translate(~0ull - 1, 4), nullptr);  // No wrap-around.
}

TEST(GuestMemory, LargeVmSplitsAroundPciHole) {
  GuestMemory memory(4 * layout::GiB, layout::RAM_SPLIT);
  ASSERT_EQ(memory.regions().size(), 2u);
  EXPECT_EQ(memory.lowRamEnd(), layout::LOW_RAM_LIMIT);
  EXPECT_EQ(memory.regions()[1].guestPhysical, layout::HIGH_RAM_BASE);
  EXPECT_EQ(memory.regions()[1].size, 4 * layout::GiB - layout::LOW_RAM_LIMIT);
  EXPECT_EQ(memory.regions()[1].memfdOffset, layout::LOW_RAM_LIMIT);
  EXPECT_EQ(memory.translate(layout::ECAM_BASE, 4), nullptr);
  uint8_t* high = memory.translate(layout::HIGH_RAM_BASE, 8);
  ASSERT_NE(high, nullptr);
  EXPECT_EQ(high, memory.base() + layout::LOW_RAM_LIMIT);
  // A range that starts in low RAM and runs into the hole is refused.
  EXPECT_EQ(memory.translate(layout::LOW_RAM_LIMIT - 4, 8), nullptr);
}

TEST(GuestMemory, RejectsBadSizes) {
  EXPECT_THROW(GuestMemory(0), std::invalid_argument);
  EXPECT_THROW(GuestMemory(3 << 20), std::invalid_argument);
}

TEST(GuestMemory, OutOfRangeCopiesNameTheAddressInHex) {
  GuestMemory memory(4 << 20);
  uint8_t byte = 0;
  try {
    memory.write(0x500000, {&byte, 1});
    ADD_FAILURE() << "a write outside RAM was accepted";
  } catch (const std::out_of_range& error) {
    EXPECT_STREQ(error.what(), "guest write of 1 bytes at 0x500000 is outside RAM");
  }
  try {
    memory.read(0x400000, {&byte, 1});
    ADD_FAILURE() << "a read outside RAM was accepted";
  } catch (const std::out_of_range& error) {
    EXPECT_STREQ(error.what(), "guest read of 1 bytes at 0x400000 is outside RAM");
  }
}

TEST(GuestMemory, MemfdIsSealedAgainstShrinking) {
  GuestMemory memory(4 << 20);
  EXPECT_NE(ftruncate(memory.memfd(), 0), 0);
}

TEST(E820, ReservesLegacyAreaAndEcam) {
  GuestMemory memory(4 * layout::GiB, layout::RAM_SPLIT);
  auto map = buildE820Map(memory);
  uint64_t ram = 0;
  uint64_t previousEnd = 0;
  bool ecamReserved = false;
  for (const auto& entry : map) {
    EXPECT_GE(entry.address, previousEnd) << "entries sorted, not overlapping";
    previousEnd = entry.address + entry.size;
    if (entry.type == E820Type::RAM) ram += entry.size;
    if (entry.address == layout::ECAM_BASE && entry.type == E820Type::RESERVED) ecamReserved = true;
  }
  EXPECT_TRUE(ecamReserved);
  EXPECT_EQ(map.front().type, E820Type::RAM);
  EXPECT_EQ(map.back().address, layout::HIGH_RAM_BASE);
  // Everything but the 0x9FC00-1 MiB legacy area is usable.
  EXPECT_EQ(ram, 4 * layout::GiB - (layout::BIOS_END - layout::EBDA_BASE));
}

}  // namespace
}  // namespace cellvisor
