#include "servers/nvme/nvme-options.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <charconv>
#include <stdexcept>

#include "base/system-error.h"
#include "servers/runtime/disk-image.h"
#include "servers/runtime/slot-options.h"

namespace cellvisor {
namespace {

template <typename T>
T number(const std::string& key, const std::string& text) {
  return slotOptionNumber<T>("nvme", key, text);
}

void setting(NvmeOptions& options, const std::string& key, const std::string& value) {
  auto bad = [&](const std::string& why) { return std::invalid_argument("nvme: " + key + ": " + why); };
  if (key == "ro") {
    options.readOnly = true;
  } else if (key == "nocache") {
    options.noCache = true;
  } else if (key == "direct") {
    options.direct = true;
  } else if (key == "ram") {
    options.ramMiB = number<uint64_t>(key, value);
    if (options.ramMiB == 0 || options.ramMiB > (1u << 20)) throw bad("1 to 1048576 MiB");
  } else if (key == "maxq") {
    options.maxQueues = number<uint16_t>(key, value);
    if (options.maxQueues < 1 || options.maxQueues > 64) throw bad("1 to 64 I/O queues");
  } else if (key == "qsz") {
    options.queueSize = number<uint32_t>(key, value);
    if (options.queueSize < 2 || options.queueSize > 4096) throw bad("2 to 4096 entries");
  } else if (key == "ioslots") {
    options.ioSlots = number<uint32_t>(key, value);
    if (options.ioSlots < 1 || options.ioSlots > 1024) throw bad("1 to 1024");
  } else if (key == "sectsz") {
    options.sectorSize = number<uint32_t>(key, value);
    if (options.sectorSize != 512 && options.sectorSize != 4096 && options.sectorSize != 8192)
      throw bad("512, 4096 or 8192");
  } else if (key == "ser") {
    if (value.empty() || value.size() > 20) throw bad("1 to 20 characters");
    for (char c : value) {
      if (c < 0x20 || c > 0x7e) throw bad("printable ASCII only");
    }
    options.serial = value;
  } else if (key == "eui64") {
    if (value.rfind("0x", 0) == 0) {
      // All of it hex, or it is refused (not the "0" before a typo).
      const char* digits = value.data() + 2;
      const char* end = value.data() + value.size();
      auto [stop, error] = std::from_chars(digits, end, options.eui64, 16);
      if (digits == end || error != std::errc() || stop != end) throw bad("not a number: '" + value + "'");
    } else {
      options.eui64 = number<uint64_t>(key, value);
    }
  } else if (key == "dsm") {
    if (value == "auto") {
      options.dsm = NvmeOptions::Dsm::AUTO;
    } else if (value == "enable") {
      options.dsm = NvmeOptions::Dsm::ENABLE;
    } else if (value == "disable") {
      options.dsm = NvmeOptions::Dsm::DISABLE;
    } else {
      throw bad("auto, enable or disable");
    }
  } else {
    throw std::invalid_argument("nvme: unknown option '" + key + "'");
  }
}

}  // namespace

NvmeOptions parseNvmeOptions(const std::string& text) {
  NvmeOptions options;
  SlotOptions slot = splitSlotOptions(text);
  // bhyve allows ram=SIZE in place of the path.
  if (slot.first.rfind("ram=", 0) == 0) {
    setting(options, "ram", slot.first.substr(4));
  } else {
    options.path = slot.first;
  }
  for (const auto& [key, value] : slot.settings) {
    try {
      setting(options, key, value);
    } catch (const std::invalid_argument&) {
      throw;
    } catch (const std::exception&) {
      throw std::invalid_argument("nvme: " + key + ": not a number: '" + value + "'");
    }
  }
  if (options.path.empty() && options.ramMiB == 0) throw std::invalid_argument("nvme: no disk image path");
  if (!options.path.empty() && options.ramMiB != 0)
    throw std::invalid_argument("nvme: a disk image path and ram= both given");
  return options;
}

UniqueFd openNvmeBackend(const NvmeOptions& options, const std::string& name) {
  if (options.ramMiB != 0) {
    UniqueFd memory(
        checkSyscall(::memfd_create("nvme-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING), "memfd_create"));
    checkSyscall(::ftruncate(memory.get(), static_cast<off_t>(options.ramMiB << 20)),
                 (name + ": ram").c_str());
    checkSyscall(::fcntl(memory.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                 "F_ADD_SEALS");
    return memory;
  }
  int flags = (options.readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  if (options.noCache) flags |= O_DIRECT;
  if (options.direct) flags |= O_SYNC;
  return openDiskImage(options.path, flags, name);
}

}  // namespace cellvisor
