#include "core/firmware/fw-cfg.h"

#include <endian.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "base/guest-memory.h"

namespace cellvisor {
namespace {

constexpr uint32_t ID_TRADITIONAL = 1u << 0;
constexpr uint32_t ID_DMA = 1u << 1;

constexpr uint32_t DMA_ERROR = 1u << 0;
constexpr uint32_t DMA_READ = 1u << 1;
constexpr uint32_t DMA_SKIP = 1u << 2;
constexpr uint32_t DMA_SELECT = 1u << 3;
constexpr uint32_t DMA_WRITE = 1u << 4;

constexpr uint64_t SELECTOR_OFFSET = 0;
constexpr uint64_t DATA_OFFSET = 1;
constexpr uint64_t DMA_HIGH_OFFSET = 4;
constexpr uint64_t DMA_LOW_OFFSET = 8;
constexpr char DMA_SIGNATURE[] = "QEMU CFG";

// The DMA descriptor as the guest lays it out (all big-endian).
struct DmaDescriptor {
  uint32_t control;
  uint32_t length;
  uint64_t address;
};
static_assert(sizeof(DmaDescriptor) == 16);

// One directory entry (big-endian numbers).
struct DirectoryEntry {
  uint32_t size;
  uint16_t select;
  uint16_t reserved;
  char name[FwCfg::FILE_NAME_MAX + 1];
};
static_assert(sizeof(DirectoryEntry) == 64);

uint64_t loadBigEndian(std::span<const uint8_t> data) {
  uint64_t value = 0;
  for (uint8_t byte : data) value = (value << 8) | byte;
  return value;
}

}  // namespace

FwCfg::FwCfg(GuestMemory& memory) : memory_(memory) {
  setItem(SIGNATURE, {'Q', 'E', 'M', 'U'});
  std::vector<uint8_t> id(4);
  storeLittleEndian(id, ID_TRADITIONAL | ID_DMA);
  setItem(ID, std::move(id));
  rebuildDirectory();
}

void FwCfg::setItem(uint16_t key, std::vector<uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  items_[key] = std::move(bytes);
}

void FwCfg::setItem16(uint16_t key, uint16_t value) {
  std::vector<uint8_t> bytes(2);
  storeLittleEndian(bytes, value);
  setItem(key, std::move(bytes));
}

void FwCfg::setItem64(uint16_t key, uint64_t value) {
  std::vector<uint8_t> bytes(8);
  storeLittleEndian(bytes, value);
  setItem(key, std::move(bytes));
}

void FwCfg::addFile(const std::string& name, std::vector<uint8_t> bytes) {
  if (name.empty() || name.size() > FILE_NAME_MAX) {
    throw std::invalid_argument("fw_cfg file name '" + name + "' must have 1-55 characters");
  }
  {
    std::lock_guard lock(mutex_);
    if (files_.count(name) != 0) throw std::invalid_argument("fw_cfg file " + name + " added twice");
    auto key = static_cast<uint16_t>(FIRST_FILE + files_.size());
    files_[name] = key;
    items_[key] = std::move(bytes);
  }
  rebuildDirectory();
}

const std::vector<uint8_t>* FwCfg::file(const std::string& name) const {
  auto found = files_.find(name);
  if (found == files_.end()) return nullptr;
  return &items_.at(found->second);
}

void FwCfg::rebuildDirectory() {
  std::lock_guard lock(mutex_);
  // Sorted by name, as firmware expects to find them (std::map's order).
  std::vector<uint8_t> directory(4 + files_.size() * sizeof(DirectoryEntry));
  uint32_t count = htobe32(static_cast<uint32_t>(files_.size()));
  std::memcpy(directory.data(), &count, 4);
  size_t at = 4;
  for (const auto& [name, key] : files_) {
    DirectoryEntry entry{};
    entry.size = htobe32(static_cast<uint32_t>(items_[key].size()));
    entry.select = htobe16(key);
    std::memcpy(entry.name, name.data(), name.size());
    std::memcpy(directory.data() + at, &entry, sizeof(entry));
    at += sizeof(entry);
  }
  items_[FILE_DIR] = std::move(directory);
}

void FwCfg::select(uint16_t key) {
  selected_ = key;
  offset_ = 0;
}

uint8_t FwCfg::nextByte() {
  auto item = items_.find(selected_);
  if (item == items_.end() || offset_ >= item->second.size()) return 0;
  return item->second[offset_++];
}

void FwCfg::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  if (offset == DATA_OFFSET) {
    for (auto& byte : data) byte = nextByte();
    return;
  }
  if (offset >= DMA_HIGH_OFFSET && offset + data.size() <= DMA_HIGH_OFFSET + 8) {
    // The DMA register reads back as the interface's signature, big-endian.
    std::memcpy(data.data(), DMA_SIGNATURE + (offset - DMA_HIGH_OFFSET), data.size());
    return;
  }
  std::fill(data.begin(), data.end(), 0);
}

void FwCfg::write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  if (offset == SELECTOR_OFFSET && data.size() == 2) {
    select(static_cast<uint16_t>(loadLittleEndian(data)));
  } else if (offset == DMA_HIGH_OFFSET && data.size() == 4) {
    dmaHigh_ = static_cast<uint32_t>(loadBigEndian(data));
  } else if (offset == DMA_LOW_OFFSET && data.size() == 4) {
    runDma((uint64_t{dmaHigh_} << 32) | loadBigEndian(data));
    dmaHigh_ = 0;
  } else if (offset == DMA_HIGH_OFFSET && data.size() == 8) {
    runDma(loadBigEndian(data));
  }
  // Writes through the data port are obsolete and ignored, as QEMU does.
}

void FwCfg::runDma(uint64_t descriptorAddress) {
  DmaDescriptor descriptor{};
  if (!memory_.contains(descriptorAddress, sizeof(descriptor))) return;  // Nowhere to report to.
  memory_.read(descriptorAddress, {reinterpret_cast<uint8_t*>(&descriptor), sizeof(descriptor)});
  uint32_t control = be32toh(descriptor.control);
  if ((control & DMA_SELECT) != 0) select(static_cast<uint16_t>(control >> 16));
  bool ok = transfer(control, be32toh(descriptor.length), be64toh(descriptor.address));
  uint32_t done = htobe32(ok ? 0 : DMA_ERROR);
  memory_.write(descriptorAddress, {reinterpret_cast<const uint8_t*>(&done), sizeof(done)});
}

bool FwCfg::transfer(uint32_t control, uint32_t length, uint64_t address) {
  if ((control & DMA_WRITE) != 0) return false;  // No item here is writable.
  if (length == 0) return true;
  bool reading = (control & DMA_READ) != 0;
  if (!reading && (control & DMA_SKIP) == 0) return true;  // Select only.
  if (reading && !memory_.contains(address, length)) return false;
  auto item = items_.find(selected_);
  size_t available = 0;
  if (item != items_.end() && offset_ < item->second.size()) available = item->second.size() - offset_;
  size_t copied = std::min<size_t>(available, length);
  if (reading) {
    // Past the item's end the buffer is zero-filled, as QEMU does.
    uint8_t* target = memory_.translate(address, length);
    if (copied != 0) std::memcpy(target, item->second.data() + offset_, copied);
    std::memset(target + copied, 0, length - copied);
  }
  offset_ += static_cast<uint32_t>(copied);
  return true;
}

}  // namespace cellvisor
