// QEMU's firmware configuration interface (fw_cfg), which SeaBIOS and OVMF
// read the machine from: a 16-bit selector at port 0x510, a byte-wide data
// port at 0x511, and the DMA interface (a big-endian descriptor address
// written in two halves at 0x514/0x518). Items are numbered keys; named files
// get keys from 0x20 up and are listed in the directory at key 0x19.
//
// The guest is not trusted: a DMA descriptor or buffer outside guest RAM sets
// the descriptor's error bit and copies nothing.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/platform/io-device.h"

namespace cellvisor {

class GuestMemory;

class FwCfg : public IoDevice {
 public:
  static constexpr uint16_t PORT = 0x510;
  static constexpr uint16_t SIZE = 12;  // Selector, data, pad, DMA address (8).

  enum Key : uint16_t {
    SIGNATURE = 0x00,
    ID = 0x01,
    UUID = 0x02,
    RAM_SIZE = 0x03,
    NOGRAPHIC = 0x04,
    NB_CPUS = 0x05,
    BOOT_MENU = 0x0e,
    MAX_CPUS = 0x0f,
    FILE_DIR = 0x19,
    FIRST_FILE = 0x20,
  };
  static constexpr size_t FILE_NAME_MAX = 55;  // 56 bytes with the NUL.

  explicit FwCfg(GuestMemory& memory);

  void setItem(uint16_t key, std::vector<uint8_t> bytes);
  void setItem16(uint16_t key, uint16_t value);
  void setItem64(uint16_t key, uint64_t value);
  // Throws std::invalid_argument for a name too long or already taken.
  void addFile(const std::string& name, std::vector<uint8_t> bytes);
  const std::vector<uint8_t>* file(const std::string& name) const;

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  void select(uint16_t key);
  uint8_t nextByte();
  void runDma(uint64_t descriptorAddress);
  // One DMA transfer of the selected item; false if the buffer is not RAM.
  bool transfer(uint32_t control, uint32_t length, uint64_t address);
  void rebuildDirectory();

  std::mutex mutex_;
  GuestMemory& memory_;
  std::map<uint16_t, std::vector<uint8_t>> items_;
  std::map<std::string, uint16_t> files_;  // Name -> key.
  uint16_t selected_ = SIGNATURE;
  uint32_t offset_ = 0;
  uint32_t dmaHigh_ = 0;  // The descriptor address's high half, latched.
};

}  // namespace cellvisor
