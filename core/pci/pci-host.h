// The PCI host bridge's configuration mechanisms: port 0xCF8/0xCFC
// (mechanism #1) and ECAM (MMCONFIG), both decoding to the same registry of
// functions on bus 0. A slot nobody claims reads as all-ones.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>

#include "core/pci/pci-device.h"
#include "core/platform/io-device.h"

namespace cellvisor {

class PciHost {
 public:
  static constexpr uint16_t ADDRESS_PORT = 0xcf8;
  static constexpr uint16_t DATA_PORT = 0xcfc;
  static constexpr int SLOTS = 32;
  static constexpr int FUNCTIONS = 8;

  // `resetRegister` answers byte accesses to 0xCF9, which shares the address
  // port's dword.
  explicit PciHost(IoDevice& resetRegister);

  // Claims bus 0, `slot`.`function`; throws if taken or out of range.
  void attach(int slot, int function, PciDevice& device);
  PciDevice* find(int bus, int slot, int function) const;

  IoDevice& addressPort() { return addressPort_; }
  IoDevice& dataPort() { return dataPort_; }
  IoDevice& ecam() { return ecam_; }

  // Decoders, public for unit tests.
  uint32_t readConfig(int bus, int slot, int function, uint16_t offset, uint8_t size) const;
  void writeConfig(int bus, int slot, int function, uint16_t offset, uint8_t size, uint32_t value);

 private:
  class AddressPort : public IoDevice {
   public:
    AddressPort(PciHost& host, IoDevice& reset) : host_(host), reset_(reset) {}
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

   private:
    PciHost& host_;
    IoDevice& reset_;
  };
  class DataPort : public IoDevice {
   public:
    explicit DataPort(PciHost& host) : host_(host) {}
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

   private:
    PciHost& host_;
  };
  class Ecam : public IoDevice {
   public:
    explicit Ecam(PciHost& host) : host_(host) {}
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

   private:
    PciHost& host_;
  };

  mutable std::mutex mutex_;
  uint32_t address_ = 0;  // The latched 0xCF8 value.
  std::array<PciDevice*, SLOTS * FUNCTIONS> functions_{};
  AddressPort addressPort_;
  DataPort dataPort_;
  Ecam ecam_;
};

}  // namespace cellvisor
