// Linux x86 boot protocol, 64-bit entry: the protected-mode kernel is loaded
// as is, boot_params (the "zero page") carries the setup header, e820 map,
// command line and initrd, and the CPU starts in long mode at load + 0x200.
#include <asm/bootparam.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "base/guest-memory.h"
#include "core/boot/boot-layout.h"
#include "core/boot/e820.h"
#include "core/boot/kernel-loader.h"
#include "core/boot/load-error.h"

namespace cellvisor {
namespace {

constexpr size_t SETUP_HEADER_OFFSET = 0x1f1;
constexpr uint16_t BOOT_FLAG = 0xaa55;
constexpr uint32_t HEADER_MAGIC = 0x53726448;  // "HdrS"
constexpr uint16_t MIN_PROTOCOL = 0x020c;      // 2.12: xloadflags, 64-bit entry.
constexpr uint8_t LOADER_TYPE_UNDEFINED = 0xff;
constexpr uint64_t ENTRY_64_OFFSET = 0x200;

}  // namespace

BootEntry loadBzImage(GuestMemory& memory, const BootRequest& request) {
  auto fail = [&](const std::string& what) -> LoadError {
    return LoadError("kernel " + request.kernelPath + ": " + what);
  };
  const auto& image = request.kernel;
  if (image.size() < SETUP_HEADER_OFFSET + sizeof(setup_header)) throw fail("truncated bzImage header");

  boot_params params{};
  // The header's own length: it ends 0x202 + the jump's target byte.
  size_t headerEnd = 0x202 + image[0x201];
  headerEnd = std::clamp(headerEnd, size_t{0x202 + 4}, SETUP_HEADER_OFFSET + sizeof(setup_header));
  std::memcpy(&params.hdr, image.data() + SETUP_HEADER_OFFSET, headerEnd - SETUP_HEADER_OFFSET);
  setup_header& header = params.hdr;

  if (header.boot_flag != BOOT_FLAG) throw fail("bad magic: boot flag is not 0xAA55");
  if (header.header != HEADER_MAGIC) throw fail("bad magic: no HdrS setup header");
  if (header.version < MIN_PROTOCOL) {
    throw fail(fmt::format("unsupported boot protocol version {}.{:02}; need 2.12 or later",
                           header.version >> 8, header.version & 0xff));
  }
  if ((header.xloadflags & XLF_KERNEL_64) == 0) throw fail("kernel has no 64-bit entry point");

  size_t setupSectors = header.setup_sects == 0 ? 4 : header.setup_sects;
  size_t kernelOffset = (setupSectors + 1) * 512;
  if (kernelOffset >= image.size()) throw fail("truncated bzImage: no protected-mode kernel");
  std::span<const uint8_t> kernel(image.data() + kernelOffset, image.size() - kernelOffset);

  // The kernel needs init_size bytes from its load address to decompress.
  uint64_t needed = std::max<uint64_t>(header.init_size, kernel.size());
  uint64_t load = header.pref_address != 0 ? header.pref_address : layout::KERNEL_DEFAULT_LOAD;
  if (!memory.contains(load, needed) && header.relocatable_kernel) load = layout::KERNEL_DEFAULT_LOAD;
  if (!memory.contains(load, needed)) {
    throw fail(fmt::format("too large for memory: needs {} MiB at {:#x}", (needed >> 20) + 1, load));
  }
  memory.write(load, kernel);

  if (request.cmdline.size() + 1 >
      std::min<uint64_t>(uint64_t{header.cmdline_size} + 1, layout::CMDLINE_MAX)) {
    throw fail(fmt::format("command line of {} bytes exceeds the kernel's limit of {}",
                           request.cmdline.size(), uint32_t{header.cmdline_size}));
  }
  memory.write(layout::CMDLINE_ADDRESS,
               {reinterpret_cast<const uint8_t*>(request.cmdline.c_str()), request.cmdline.size() + 1});

  header.type_of_loader = LOADER_TYPE_UNDEFINED;
  header.loadflags |= CAN_USE_HEAP;
  header.heap_end_ptr = 0xfe00;
  header.cmd_line_ptr = static_cast<uint32_t>(layout::CMDLINE_ADDRESS);
  if (!request.initrd.empty()) {
    uint64_t limit = uint64_t{header.initrd_addr_max} + 1;
    uint64_t address = placeInitrd(memory, request.initrd.size(), load + needed, limit);
    memory.write(address, request.initrd);
    header.ramdisk_image = static_cast<uint32_t>(address);
    header.ramdisk_size = static_cast<uint32_t>(request.initrd.size());
  }
  params.acpi_rsdp_addr = request.rsdpAddress;

  auto e820 = buildE820Map(memory);
  if (e820.size() > E820_MAX_ENTRIES_ZEROPAGE) throw fail("e820 map too large");
  for (size_t i = 0; i < e820.size(); ++i) {
    params.e820_table[i] = {e820[i].address, e820[i].size, static_cast<uint32_t>(e820[i].type)};
  }
  params.e820_entries = static_cast<uint8_t>(e820.size());
  memory.writeObject(layout::ZERO_PAGE, params);
  return {BootEntry::Mode::LONG_64, load + ENTRY_64_OFFSET, layout::ZERO_PAGE};
}

}  // namespace cellvisor
