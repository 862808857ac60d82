// Puts a guest kernel (Linux bzImage or a PVH ELF such as vmlinux or our test
// guest), its initrd and command line into guest RAM, and says where to start.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/boot/x86-boot-state.h"

namespace cellvisor {

class GuestMemory;

struct BootRequest {
  std::string kernelPath;
  std::vector<uint8_t> kernel;  // The image's bytes.
  std::vector<uint8_t> initrd;  // Empty when there is none.
  std::string cmdline;
  uint64_t rsdpAddress = 0;  // 0 when there are no ACPI tables.
};

enum class KernelFormat { BZIMAGE, PVH_ELF };

// Which loader an image needs; throws LoadError when it is neither.
KernelFormat detectKernelFormat(std::span<const uint8_t> image, const std::string& path);

// Each throws LoadError naming what is wrong with the image.
BootEntry loadBzImage(GuestMemory& memory, const BootRequest& request);
BootEntry loadPvhElf(GuestMemory& memory, const BootRequest& request);
BootEntry loadKernel(GuestMemory& memory, const BootRequest& request);

// Reads a whole file for a loader. Throws LoadError if it cannot, if it is
// not a regular file (a device or FIFO may never end) or if it holds more
// than `limit` bytes (more than guest memory, or than the space `limitName`
// names, can never be loaded).
std::vector<uint8_t> readImageFile(const std::string& path, const char* what, uint64_t limit,
                                   const char* limitName = "guest memory");

// Where an initrd of `size` bytes goes: as high as possible below `limit`
// (exclusive) and above `kernelEnd`, page aligned. Throws LoadError if none.
uint64_t placeInitrd(const GuestMemory& memory, uint64_t size, uint64_t kernelEnd, uint64_t limit);

}  // namespace cellvisor
