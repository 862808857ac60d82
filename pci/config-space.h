// One PCI configuration space with write masks, used by every PCI function
// cellvisor emulates: the core's host bridge and LPC, and every device
// server. It works on storage the caller chooses: its own, or a device
// server's state segment, where what the guest programmed survives a server
// restart (a restarted server rebuilds only the write masks).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace cellvisor::pci {

struct Identity {
  uint16_t vendor;
  uint16_t device;
  uint8_t revision = 0;
  uint8_t progIf = 0;
  uint8_t subclass = 0;
  uint8_t classCode = 0;
  uint16_t subsystemVendor = 0;
  uint16_t subsystem = 0;
  uint8_t headerType = 0;  // 0x80 marks a multi-function device.
};

enum class BarKind { IO, MEMORY32, MEMORY64 };

struct Bar {
  BarKind kind = BarKind::MEMORY32;
  uint64_t size = 0;  // Power of two, 0 when unused.
  bool prefetchable = false;
};

// Register offsets and bits of the type-0 header.
constexpr uint16_t VENDOR_ID = 0x00;
constexpr uint16_t COMMAND = 0x04;
constexpr uint16_t STATUS = 0x06;
constexpr uint16_t BAR0 = 0x10;
constexpr uint16_t EXPANSION_ROM = 0x30;
// The expansion ROM where BAR indices are used (layouts, hellos): after 0-5.
constexpr uint8_t ROM_BAR_INDEX = 6;
constexpr uint32_t ROM_ENABLE = 1u << 0;
constexpr uint16_t CAPABILITIES = 0x34;
constexpr uint16_t INTERRUPT_LINE = 0x3c;
constexpr uint16_t INTERRUPT_PIN = 0x3d;
constexpr uint16_t COMMAND_IO = 1u << 0;
constexpr uint16_t COMMAND_MEMORY = 1u << 1;
constexpr uint16_t COMMAND_BUS_MASTER = 1u << 2;
constexpr uint16_t COMMAND_INTX_DISABLE = 1u << 10;
constexpr uint16_t STATUS_CAPABILITIES = 1u << 4;
constexpr uint16_t FIRST_CAPABILITY = 0x40;
constexpr uint8_t CAPABILITY_MSIX = 0x11;
constexpr uint8_t CAPABILITY_VENDOR = 0x09;

class ConfigSpace {
 public:
  // FRESH: the storage is cleared and built by the set calls. RESTORED: it
  // already holds what the guest programmed (a restarted server); the same
  // set calls then only rebuild the write masks and BAR kinds.
  enum class Contents { FRESH, RESTORED };

  // Owns 4 KiB (PCI Express extended configuration space).
  ConfigSpace();
  // Works on `storage` (256 bytes or 4 KiB), which must outlive it.
  ConfigSpace(std::span<uint8_t> storage, Contents contents);
  ConfigSpace(const ConfigSpace&) = delete;
  ConfigSpace& operator=(const ConfigSpace&) = delete;

  // Vendor, device, class, subsystem, header type; command register with
  // I/O, memory, bus-master and INTx-disable writable; interrupt line as
  // scratch for the OS.
  void setIdentity(const Identity& identity);
  // Device registers: a value and which of its bits the guest may change.
  void setByte(uint16_t offset, uint8_t value, uint8_t writeMask = 0);
  void set16(uint16_t offset, uint16_t value, uint16_t writeMask = 0);
  void set32(uint16_t offset, uint32_t value, uint32_t writeMask = 0);
  // Appends a capability of `length` bytes (ID and next pointer included,
  // dword aligned) to the list and returns its offset.
  uint16_t addCapability(uint8_t id, uint8_t length);
  // Declares BAR `index` (a 64-bit BAR also takes index + 1) at `address`.
  // Throws std::invalid_argument for a bad index, size or alignment.
  void setBar(int index, const Bar& bar, uint64_t address);
  // An expansion ROM of `size` bytes (a power of two, at least 2 KiB): its
  // register sizes, takes an address and the enable bit.
  void setExpansionRom(uint64_t size);
  void setInterruptPin(uint8_t pin, uint8_t line);

  const Bar& bar(int index) const { return bars_.at(static_cast<size_t>(index)); }
  uint64_t barAddress(int index) const;
  // Whether the command register lets the function decode BAR `index`.
  bool decodes(int index) const;

  // Accesses as the guest makes them: 1, 2 or 4 bytes, naturally aligned,
  // inside the space. Reads outside answer all ones; writes outside, or
  // misaligned, are dropped; writes change only writable bits.
  uint32_t read(uint16_t offset, uint8_t size) const;
  void write(uint16_t offset, uint8_t size, uint32_t value);
  uint16_t size() const { return static_cast<uint16_t>(bytes_.size()); }

 private:
  uint32_t raw(uint16_t offset, uint8_t size) const;

  std::vector<uint8_t> owned_;
  std::span<uint8_t> bytes_;
  std::vector<uint8_t> writable_;
  bool restored_;
  std::array<Bar, 6> bars_{};
  uint16_t lastCapability_ = 0;
  uint16_t nextCapability_ = FIRST_CAPABILITY;
};

// Whether (offset, size) is an access a configuration cycle can make.
constexpr bool validConfigAccess(uint16_t offset, uint8_t size, uint16_t spaceSize) {
  return (size == 1 || size == 2 || size == 4) && offset % size == 0 && offset < spaceSize &&
         size <= spaceSize - offset;
}

}  // namespace cellvisor::pci
