#include "base/guest-memory.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <charconv>
#include <cstring>
#include <stdexcept>

#include "base/system-error.h"

namespace cellvisor {
namespace {

// The fuzz targets link this file alone, without fmt.
std::string outsideRam(const char* access, size_t length, uint64_t address) {
  char hex[16];
  auto end = std::to_chars(hex, hex + sizeof(hex), address, 16).ptr;
  return std::string("guest ") + access + " of " + std::to_string(length) + " bytes at 0x" +
         std::string(hex, end) + " is outside RAM";
}

}  // namespace

GuestRamFile createGuestRam(uint64_t size, RamSplit split) {
  constexpr uint64_t ALIGN = 2 << 20;
  if (size < ALIGN || size % ALIGN != 0) {
    throw std::invalid_argument("guest memory must be a non-zero multiple of 2 MiB, got " +
                                std::to_string(size) + " bytes");
  }
  GuestRamFile file;
  file.memfd =
      UniqueFd(checkSyscall(::memfd_create("guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING), "memfd_create"));
  checkSyscall(::ftruncate(file.memfd.get(), static_cast<off_t>(size)), "ftruncate guest RAM");
  // Servers map this fd too: a shrink would turn their accesses into SIGBUS.
  checkSyscall(::fcntl(file.memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
               "F_ADD_SEALS");
  uint64_t low = size < split.lowLimit ? size : split.lowLimit;
  file.regions.push_back({0, low, 0});
  if (size > low) file.regions.push_back({split.highBase, size - low, low});
  return file;
}

GuestMemory::GuestMemory(uint64_t size, RamSplit split) : GuestMemory(createGuestRam(size, split)) {}

GuestMemory::GuestMemory(GuestRamFile file) : GuestMemory(std::move(file.memfd), std::move(file.regions)) {
  ::madvise(mapping_.data(), size_, MADV_HUGEPAGE);  // Best effort; shmem THP may be off.
}

GuestMemory::GuestMemory(UniqueFd memfd, std::vector<RamRegion> regions)
    : size_(0), memfd_(std::move(memfd)), regions_(std::move(regions)) {
  struct stat st {};
  checkSyscall(::fstat(memfd_.get(), &st), "fstat guest RAM");
  uint64_t fileSize = static_cast<uint64_t>(st.st_size);
  if (regions_.empty()) throw std::invalid_argument("no RAM regions");
  for (const auto& region : regions_) {
    if (region.memfdOffset > fileSize || region.size > fileSize - region.memfdOffset ||
        region.guestPhysical + region.size < region.guestPhysical) {
      throw std::invalid_argument("RAM region does not fit the guest memory file");
    }
    size_ += region.size;
  }
  mapping_ = Mapping::map(memfd_.get(), fileSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE);
}

uint8_t* GuestMemory::translate(uint64_t address, uint64_t length) const {
  for (const auto& region : regions_) {
    if (address < region.guestPhysical) continue;
    uint64_t offset = address - region.guestPhysical;
    if (offset >= region.size || length > region.size - offset) continue;
    return mapping_.data() + region.memfdOffset + offset;
  }
  return nullptr;
}

void GuestMemory::write(uint64_t address, std::span<const uint8_t> data) {
  uint8_t* host = translate(address, data.size());
  if (host == nullptr) {
    throw std::out_of_range(outsideRam("write", data.size(), address));
  }
  std::memcpy(host, data.data(), data.size());
}

void GuestMemory::read(uint64_t address, std::span<uint8_t> out) const {
  const uint8_t* host = translate(address, out.size());
  if (host == nullptr) {
    throw std::out_of_range(outsideRam("read", out.size(), address));
  }
  std::memcpy(out.data(), host, out.size());
}

}  // namespace cellvisor
