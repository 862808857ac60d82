// Firmware boot, as bhyve's `-l bootrom,FILE`: the image is mapped read-only
// so that it ends at 4 GiB, its last 128 KiB are also copied below 1 MiB
// (where a BIOS starts executing after the reset vector's far jump), and
// vCPU 0 starts at the reset vector with the others waiting for INIT/SIPI.
// A UEFI variable store (`-l bootrom,CODE,VARS`) is mapped writable just
// below the code, shared with its file, as bhyve does: what the firmware
// writes there is the VM's copy on disk.
// The firmware learns the machine from fw_cfg: the memory map, the CPU
// count, the system UUID, whether there is a screen, and the core's ACPI
// tables, which it installs through the table-loader.
#include <endian.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "base/guest-memory.h"
#include "base/mapping.h"
#include "base/unique-fd.h"
#include "core/arch/x86/address-map.h"
#include "core/boot/boot-method.h"
#include "core/boot/e820.h"
#include "core/boot/kernel-loader.h"
#include "core/boot/load-error.h"
#include "core/firmware/acpi-table-loader.h"
#include "core/firmware/fw-cfg.h"
#include "core/kvm/vcpu.h"
#include "core/kvm/vm.h"
#include "core/machine/machine-config.h"
#include "host/server-kind.h"

namespace cellvisor {
namespace {

constexpr uint64_t PAGE = 4 * layout::KiB;
constexpr uint64_t LOW_ALIAS_SIZE = 128 * layout::KiB;  // What a PC aliases at 0xE0000.
constexpr uint64_t FOUR_GIB = 4 * layout::GiB;
constexpr uint32_t KVM_READONLY_SLOT = 1u << 1;  // KVM_MEM_READONLY.

// One fw_cfg "etc/e820" entry, little-endian and packed.
struct [[gnu::packed]] FwCfgE820Entry {
  uint64_t address;
  uint64_t length;
  uint32_t type;
};
static_assert(sizeof(FwCfgE820Entry) == 20);

// fw_cfg key 2 holds the UUID's 16 bytes in the order its text spells them,
// as QEMU gives it; firmware builds SMBIOS's system UUID from it.
std::vector<uint8_t> uuidBytes(const std::string& text) {
  std::vector<uint8_t> bytes;
  std::string hex;
  for (char c : text) {
    if (c != '-') hex += c;
  }
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

class FirmwareBoot : public BootMethod {
 public:
  explicit FirmwareBoot(const MachineConfig& config)
      : path_(config.bootrom),
        varsPath_(config.bootvars),
        cpus_(config.cpus),
        uuid_(config.uuid),
        bootOrder_(config.bootOrder),
        slots_(config.pciSlots),
        console_(config.serial.count("com1") != 0) {}

  void prepare(BootContext& context) override {
    auto image = readImageFile(path_, "bootrom", layout::FIRMWARE_SIZE, "the firmware area below 4 GiB");
    if (image.empty()) throw LoadError("bootrom " + path_ + ": the file is empty");
    if (image.size() % PAGE != 0) {
      throw LoadError(
          fmt::format("bootrom {}: {} bytes is not a whole number of 4 KiB pages (a firmware "
                      "image is a flash image: 128 KiB, 256 KiB, 2 MiB, 4 MiB...)",
                      path_, image.size()));
    }
    if (!varsPath_.empty()) mapVars(context.vm, image.size());
    mapImage(context.vm, image);
    // The reset vector's far jump lands in the low alias; SeaBIOS then copies
    // itself down from the top of 4 GiB (PAM is a no-op here: it is RAM).
    uint64_t alias = std::min<uint64_t>(image.size(), LOW_ALIAS_SIZE);
    context.memory.write(layout::BIOS_END - alias, {image.data() + image.size() - alias, alias});
    describeMachine(context.memory, context.fwCfg, image.size());
    addAcpiTableLoader(context.fwCfg, buildAcpiTables(context.acpi, 0));
  }

  // KVM creates vCPU 0 in the reset state (CS base 0xFFFF0000, IP 0xFFF0):
  // that is where firmware starts.
  void setUpBootVcpu(Vcpu&) override {}

 private:
  void mapVars(Vm& vm, uint64_t codeSize) {
    UniqueFd fd(::open(varsPath_.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK));
    if (!fd) {
      throw LoadError(
          fmt::format("bootvars {}: cannot open for writing ({}): UEFI writes its variables "
                      "back; give each VM its own copy",
                      varsPath_, std::strerror(errno)));
    }
    off_t size = ::lseek(fd.get(), 0, SEEK_END);
    if (size <= 0 || size % static_cast<off_t>(PAGE) != 0) {
      throw LoadError(
          fmt::format("bootvars {}: {} bytes is not a variable store (whole 4 KiB pages)", varsPath_, size));
    }
    varsSize_ = static_cast<uint64_t>(size);
    if (codeSize + varsSize_ > layout::FIRMWARE_SIZE) {
      throw LoadError(
          fmt::format("bootrom {} and bootvars {} together exceed the firmware area below 4 GiB (16 MiB)",
                      path_, varsPath_));
    }
    vars_ = Mapping::map(fd.get(), varsSize_, PROT_READ | PROT_WRITE, MAP_SHARED);
    vm.addMemorySlot(FOUR_GIB - codeSize - varsSize_, varsSize_, vars_.data());
  }

  void mapImage(Vm& vm, const std::vector<uint8_t>& image) {
    rom_ = Mapping::anonymous(image.size());
    std::memcpy(rom_.data(), image.data(), image.size());
    uint64_t base = FOUR_GIB - image.size();
    try {
      vm.addMemorySlot(base, image.size(), rom_.data(), KVM_READONLY_SLOT);
      ::mprotect(rom_.data(), image.size(), PROT_READ);
    } catch (const std::system_error& error) {
      // Without read-only slots the guest could write its own copy of the
      // firmware (never the file): worse isolation, same boot.
      std::fprintf(stderr, "vmm-core: note: read-only memory slots refused (%s); bootrom mapped writable\n",
                   error.what());
      vm.addMemorySlot(base, image.size(), rom_.data());
    }
  }

  void describeMachine(const GuestMemory& memory, FwCfg& fwCfg, uint64_t imageSize) {
    fwCfg.setItem16(FwCfg::NB_CPUS, static_cast<uint16_t>(cpus_));
    fwCfg.setItem16(FwCfg::MAX_CPUS, static_cast<uint16_t>(cpus_));
    fwCfg.setItem64(FwCfg::RAM_SIZE, memory.size());
    fwCfg.setItem16(FwCfg::BOOT_MENU, 0);
    // No display yet: firmware mirrors its screen onto COM1 when there is one.
    fwCfg.setItem16(FwCfg::NOGRAPHIC, console_ ? 1 : 0);
    if (!uuid_.empty()) fwCfg.setItem(FwCfg::UUID, uuidBytes(uuid_));

    std::vector<FwCfgE820Entry> entries;
    for (const auto& region : memory.regions()) {
      entries.push_back({region.guestPhysical, region.size, static_cast<uint32_t>(E820Type::RAM)});
    }
    // KVM's real-mode TSS and identity page, and the firmware itself.
    entries.push_back({layout::IDENTITY_MAP_ADDRESS, 4 * PAGE, static_cast<uint32_t>(E820Type::RESERVED)});
    uint64_t firmware = imageSize + varsSize_;
    entries.push_back({FOUR_GIB - firmware, firmware, static_cast<uint32_t>(E820Type::RESERVED)});
    std::vector<uint8_t> e820(entries.size() * sizeof(FwCfgE820Entry));
    std::memcpy(e820.data(), entries.data(), e820.size());
    fwCfg.addFile("etc/e820", std::move(e820));
    if (!bootOrder_.empty()) fwCfg.addFile("bootorder", bootOrderFile());
  }

  // bhyve's bootindex as the firmware's "bootorder": one Open Firmware device
  // path per line, lowest index first; devices not listed come after.
  std::vector<uint8_t> bootOrderFile() const {
    std::vector<std::pair<int, std::pair<int, int>>> ordered;
    for (const auto& [where, index] : bootOrder_) ordered.push_back({index, where});
    std::sort(ordered.begin(), ordered.end());
    std::string text;
    for (const auto& [index, where] : ordered) {
      text += where.second == 0 ? fmt::format("/pci@i0cf8/*@{:x}", where.first)
                                : fmt::format("/pci@i0cf8/*@{:x},{:x}", where.first, where.second);
      for (const auto& slot : slots_) {
        if (slot.slot != where.first || slot.function != where.second) continue;
        if (const ServerKind* kind = findServerKind(slot.emulation)) text += kind->bootPathSuffix;
      }
      text += '\n';
    }
    return {text.begin(), text.end()};
  }

  std::string path_;
  std::string varsPath_;
  uint32_t cpus_;
  std::string uuid_;
  std::map<std::pair<int, int>, int> bootOrder_;
  std::vector<PciSlotConfig> slots_;
  bool console_;
  Mapping rom_;   // The guest's copy of the image, behind the read-only slot.
  Mapping vars_;  // The variable store's file, shared.
  uint64_t varsSize_ = 0;
};

}  // namespace

std::unique_ptr<BootMethod> makeFirmwareBoot(const MachineConfig& config) {
  return std::make_unique<FirmwareBoot>(config);
}

}  // namespace cellvisor
