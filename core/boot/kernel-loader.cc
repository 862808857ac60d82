#include "core/boot/kernel-loader.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/boot/boot-layout.h"
#include "core/boot/load-error.h"
#include "core/memory/guest-memory.h"

namespace cellvisor {

std::vector<uint8_t> readImageFile(const std::string& path, const char* what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw LoadError(std::string(what) + " " + path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) throw LoadError(std::string(what) + " " + path + ": read error");
  return bytes;
}

KernelFormat detectKernelFormat(std::span<const uint8_t> image, const std::string& path) {
  if (image.size() >= SELFMAG && std::memcmp(image.data(), ELFMAG, SELFMAG) == 0) {
    return KernelFormat::PVH_ELF;
  }
  constexpr size_t HEADER_MAGIC_OFFSET = 0x202;
  if (image.size() >= HEADER_MAGIC_OFFSET + 4 &&
      std::memcmp(image.data() + HEADER_MAGIC_OFFSET, "HdrS", 4) == 0) {
    return KernelFormat::BZIMAGE;
  }
  throw LoadError("kernel " + path + ": bad magic: neither an ELF file nor a Linux bzImage");
}

uint64_t placeInitrd(const GuestMemory& memory, uint64_t size, uint64_t kernelEnd, uint64_t limit) {
  constexpr uint64_t PAGE = 4096;
  uint64_t top = std::min(memory.lowRamEnd(), limit);
  if (size > top)
    throw LoadError("initrd of " + std::to_string(size) + " bytes does not fit in guest memory");
  uint64_t address = (top - size) & ~(PAGE - 1);
  if (address < kernelEnd) {
    throw LoadError("initrd of " + std::to_string(size) +
                    " bytes does not fit in guest memory above the kernel");
  }
  return address;
}

BootEntry loadKernel(GuestMemory& memory, const BootRequest& request) {
  switch (detectKernelFormat(request.kernel, request.kernelPath)) {
    case KernelFormat::BZIMAGE:
      return loadBzImage(memory, request);
    case KernelFormat::PVH_ELF:
      return loadPvhElf(memory, request);
  }
  throw LoadError("unreachable");
}

}  // namespace cellvisor
