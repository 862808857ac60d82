// PVH: an ELF whose "Xen" note XEN_ELFNOTE_PHYS32_ENTRY gives a 32-bit
// entry point, started in flat protected mode with %ebx = hvm_start_info.
#include <elf.h>
#include <fmt/format.h>

#include <cstring>
#include <optional>

#include "base/guest-memory.h"
#include "core/boot/boot-layout.h"
#include "core/boot/e820.h"
#include "core/boot/kernel-loader.h"
#include "core/boot/load-error.h"

namespace cellvisor {
namespace {

constexpr uint32_t XEN_ELFNOTE_PHYS32_ENTRY = 18;
constexpr uint32_t HVM_START_MAGIC = 0x336ec578;

struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t moduleCount;
  uint64_t moduleListAddress;
  uint64_t cmdlineAddress;
  uint64_t rsdpAddress;
  uint64_t memmapAddress;
  uint32_t memmapEntries;
  uint32_t reserved;
};

struct HvmModule {
  uint64_t address;
  uint64_t size;
  uint64_t cmdlineAddress;
  uint64_t reserved;
};

struct HvmMemmapEntry {
  uint64_t address;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};

class ElfImage {
 public:
  ElfImage(std::span<const uint8_t> bytes, const std::string& path) : bytes_(bytes), path_(path) {
    if (bytes.size() < sizeof(Elf64_Ehdr)) fail("truncated ELF header");
    std::memcpy(&header_, bytes.data(), sizeof(header_));
    if (header_.e_ident[EI_CLASS] != ELFCLASS64) fail("not a 64-bit ELF file");
    if (header_.e_ident[EI_DATA] != ELFDATA2LSB) fail("not a little-endian ELF file");
    if (header_.e_machine != EM_X86_64) fail("not an x86-64 ELF file");
    if (header_.e_type != ET_EXEC) fail("not an executable ELF file");
    if (header_.e_phentsize != sizeof(Elf64_Phdr)) fail("bad program header size");
    uint64_t tableEnd = header_.e_phoff + uint64_t{header_.e_phnum} * sizeof(Elf64_Phdr);
    if (header_.e_phoff > bytes.size() || tableEnd > bytes.size()) fail("program headers past end of file");
  }

  Elf64_Phdr programHeader(size_t index) const {
    Elf64_Phdr phdr;
    std::memcpy(&phdr, bytes_.data() + header_.e_phoff + index * sizeof(Elf64_Phdr), sizeof(phdr));
    return phdr;
  }
  size_t programHeaderCount() const { return header_.e_phnum; }

  std::span<const uint8_t> segmentBytes(const Elf64_Phdr& phdr) const {
    if (phdr.p_offset > bytes_.size() || phdr.p_filesz > bytes_.size() - phdr.p_offset) {
      fail("segment data past end of file");
    }
    return bytes_.subspan(phdr.p_offset, phdr.p_filesz);
  }

  [[noreturn]] void fail(const std::string& what) const { throw LoadError("kernel " + path_ + ": " + what); }

 private:
  std::span<const uint8_t> bytes_;
  std::string path_;
  Elf64_Ehdr header_{};
};

// Walks one PT_NOTE segment for the PVH entry note.
std::optional<uint64_t> findPvhEntry(const ElfImage& elf, std::span<const uint8_t> notes) {
  size_t offset = 0;
  auto align4 = [](uint64_t n) { return (n + 3) & ~uint64_t{3}; };
  while (notes.size() - offset >= sizeof(Elf64_Nhdr)) {
    Elf64_Nhdr note;
    std::memcpy(&note, notes.data() + offset, sizeof(note));
    offset += sizeof(note);
    uint64_t nameSize = align4(note.n_namesz);
    uint64_t descSize = align4(note.n_descsz);
    if (nameSize > notes.size() - offset || descSize > notes.size() - offset - nameSize) {
      elf.fail("truncated ELF note");
    }
    const uint8_t* name = notes.data() + offset;
    const uint8_t* desc = name + nameSize;
    offset += nameSize + descSize;
    if (note.n_type != XEN_ELFNOTE_PHYS32_ENTRY || note.n_namesz != 4 || std::memcmp(name, "Xen", 4) != 0) {
      continue;
    }
    if (note.n_descsz == 4) {
      uint32_t entry;
      std::memcpy(&entry, desc, 4);
      return entry;
    }
    if (note.n_descsz == 8) {
      uint64_t entry;
      std::memcpy(&entry, desc, 8);
      return entry;
    }
    elf.fail("PVH entry note has a bad size");
  }
  return std::nullopt;
}

}  // namespace

BootEntry loadPvhElf(GuestMemory& memory, const BootRequest& request) {
  ElfImage elf(request.kernel, request.kernelPath);
  std::optional<uint64_t> entry;
  uint64_t kernelEnd = 0;
  bool loadedAny = false;
  for (size_t i = 0; i < elf.programHeaderCount(); ++i) {
    Elf64_Phdr phdr = elf.programHeader(i);
    if (phdr.p_type == PT_NOTE && !entry) entry = findPvhEntry(elf, elf.segmentBytes(phdr));
    if (phdr.p_type != PT_LOAD) continue;
    if (phdr.p_filesz > phdr.p_memsz) elf.fail("segment file size exceeds its memory size");
    if (phdr.p_paddr < layout::BIOS_END) elf.fail("segment below 1 MiB overlaps the boot area");
    if (!memory.contains(phdr.p_paddr, phdr.p_memsz)) {
      elf.fail(fmt::format("too large for memory: segment at {:#x} of {} bytes is outside guest RAM",
                           phdr.p_paddr, phdr.p_memsz));
    }
    auto data = elf.segmentBytes(phdr);
    memory.write(phdr.p_paddr, data);
    std::memset(memory.translate(phdr.p_paddr + phdr.p_filesz, phdr.p_memsz - phdr.p_filesz), 0,
                phdr.p_memsz - phdr.p_filesz);
    kernelEnd = std::max(kernelEnd, phdr.p_paddr + phdr.p_memsz);
    loadedAny = true;
  }
  if (!loadedAny) elf.fail("no loadable segments");
  if (!entry) elf.fail("no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); not a PVH kernel");
  if (*entry >= 4 * layout::GiB || !memory.contains(*entry, 1)) {
    elf.fail("PVH entry point is outside guest RAM");
  }

  if (request.cmdline.size() + 1 > layout::CMDLINE_MAX) elf.fail("command line too long");
  memory.write(layout::CMDLINE_ADDRESS,
               {reinterpret_cast<const uint8_t*>(request.cmdline.c_str()), request.cmdline.size() + 1});

  HvmStartInfo info{};
  info.magic = HVM_START_MAGIC;
  info.version = 1;
  info.cmdlineAddress = layout::CMDLINE_ADDRESS;
  info.rsdpAddress = request.rsdpAddress;
  if (!request.initrd.empty()) {
    uint64_t address = placeInitrd(memory, request.initrd.size(), kernelEnd, layout::LOW_RAM_LIMIT);
    memory.write(address, request.initrd);
    HvmModule module{address, request.initrd.size(), 0, 0};
    uint64_t moduleAddress = layout::PVH_START_INFO + sizeof(HvmStartInfo);
    memory.writeObject(moduleAddress, module);
    info.moduleCount = 1;
    info.moduleListAddress = moduleAddress;
  }
  auto e820 = buildE820Map(memory);
  for (size_t i = 0; i < e820.size(); ++i) {
    HvmMemmapEntry entryOut{e820[i].address, e820[i].size, static_cast<uint32_t>(e820[i].type), 0};
    memory.writeObject(layout::PVH_MEMMAP + i * sizeof(HvmMemmapEntry), entryOut);
  }
  info.memmapAddress = layout::PVH_MEMMAP;
  info.memmapEntries = static_cast<uint32_t>(e820.size());
  memory.writeObject(layout::PVH_START_INFO, info);
  return {BootEntry::Mode::PROTECTED_32, *entry, layout::PVH_START_INFO};
}

}  // namespace cellvisor
