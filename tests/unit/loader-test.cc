// Kernel loaders: valid images land where the boot protocols say, and
// crafted-invalid ones are refused with an error that names the problem.
#include <asm/bootparam.h>
#include <elf.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "base/guest-memory.h"
#include "core/boot/boot-layout.h"
#include "core/boot/kernel-loader.h"
#include "core/boot/load-error.h"

namespace cellvisor {
namespace {

constexpr uint64_t MEMORY = 64 << 20;

// A minimal bzImage: boot sector + setup header, then the "kernel" bytes.
std::vector<uint8_t> makeBzImage(uint16_t version = 0x020f, uint16_t xloadflags = 1,
                                 uint32_t initSize = 4 << 20) {
  constexpr size_t setupSectors = 4;
  std::vector<uint8_t> image((setupSectors + 1) * 512 + 4096, 0);
  setup_header header{};
  header.setup_sects = setupSectors;
  header.boot_flag = 0xaa55;
  header.jump = 0x66eb;  // Jump over the header: header ends at 0x202 + 0x66.
  header.header = 0x53726448;
  header.version = version;
  header.relocatable_kernel = 1;
  header.xloadflags = xloadflags;
  header.cmdline_size = 2047;
  header.initrd_addr_max = 0x7fffffff;
  header.init_size = initSize;
  header.pref_address = 0x1000000;
  header.kernel_alignment = 0x200000;
  std::memcpy(image.data() + 0x1f1, &header, sizeof(header));
  for (size_t i = 0; i < 4096; ++i) image[(setupSectors + 1) * 512 + i] = static_cast<uint8_t>(i * 7);
  return image;
}

// A minimal PVH ELF: one PT_LOAD at `loadAddress`, one PT_NOTE with the entry.
std::vector<uint8_t> makePvhElf(uint64_t loadAddress = 0x100000, bool withNote = true,
                                uint64_t fileSize = 256) {
  std::vector<uint8_t> image(0x1000 + fileSize, 0);
  Elf64_Ehdr header{};
  std::memcpy(header.e_ident, ELFMAG, SELFMAG);
  header.e_ident[EI_CLASS] = ELFCLASS64;
  header.e_ident[EI_DATA] = ELFDATA2LSB;
  header.e_ident[EI_VERSION] = EV_CURRENT;
  header.e_type = ET_EXEC;
  header.e_machine = EM_X86_64;
  header.e_version = EV_CURRENT;
  header.e_entry = loadAddress;
  header.e_phoff = sizeof(Elf64_Ehdr);
  header.e_ehsize = sizeof(Elf64_Ehdr);
  header.e_phentsize = sizeof(Elf64_Phdr);
  header.e_phnum = 2;
  std::memcpy(image.data(), &header, sizeof(header));
  Elf64_Phdr load{};
  load.p_type = PT_LOAD;
  load.p_offset = 0x1000;
  load.p_paddr = load.p_vaddr = loadAddress;
  load.p_filesz = fileSize;
  load.p_memsz = fileSize + 4096;  // A bss to be zeroed.
  std::memcpy(image.data() + sizeof(header), &load, sizeof(load));
  Elf64_Phdr note{};
  note.p_type = PT_NOTE;
  note.p_offset = 0x800;
  note.p_filesz = withNote ? 20 : 0;
  std::memcpy(image.data() + sizeof(header) + sizeof(load), &note, sizeof(note));
  uint32_t noteWords[] = {4, 4, 18, 0x006e6558 /* "Xen\0" */, static_cast<uint32_t>(loadAddress + 0x10)};
  std::memcpy(image.data() + 0x800, noteWords, sizeof(noteWords));
  for (uint64_t i = 0; i < fileSize; ++i) image[0x1000 + i] = static_cast<uint8_t>(0xa0 + i);
  return image;
}

BootRequest request(std::vector<uint8_t> kernel, std::string cmdline = "console=ttyS0") {
  BootRequest r;
  r.kernelPath = "test-image";
  r.kernel = std::move(kernel);
  r.cmdline = std::move(cmdline);
  r.rsdpAddress = layout::ACPI_ADDRESS;
  return r;
}

template <typename F>
std::string loadErrorOf(F&& load) {
  try {
    load();
  } catch (const LoadError& error) {
    return error.what();
  }
  return "";
}

TEST(BzImageLoader, LoadsKernelAndFillsZeroPage) {
  GuestMemory memory(MEMORY);
  auto req = request(makeBzImage());
  req.initrd.assign(10000, 0x5a);
  BootEntry entry = loadKernel(memory, req);
  EXPECT_EQ(entry.mode, BootEntry::Mode::LONG_64);
  EXPECT_EQ(entry.entry, 0x1000000u + 0x200);
  EXPECT_EQ(entry.bootInfo, layout::ZERO_PAGE);
  EXPECT_EQ(memory.translate(0x1000000, 1)[5], 35);  // Kernel byte 5 = 5 * 7.

  boot_params params;
  memory.read(layout::ZERO_PAGE, {reinterpret_cast<uint8_t*>(&params), sizeof(params)});
  EXPECT_EQ(params.hdr.type_of_loader, 0xff);
  EXPECT_EQ(params.hdr.cmd_line_ptr, layout::CMDLINE_ADDRESS);
  EXPECT_STREQ(reinterpret_cast<char*>(memory.translate(layout::CMDLINE_ADDRESS, 14)), "console=ttyS0");
  EXPECT_EQ(params.hdr.ramdisk_size, 10000u);
  EXPECT_EQ(params.hdr.ramdisk_image % 4096, 0u);
  EXPECT_GE(params.hdr.ramdisk_image, 0x1000000u + (4u << 20));
  EXPECT_EQ(memory.translate(params.hdr.ramdisk_image, 1)[0], 0x5a);
  EXPECT_EQ(params.acpi_rsdp_addr, layout::ACPI_ADDRESS);
  ASSERT_GT(params.e820_entries, 3);
  EXPECT_EQ(params.e820_table[0].addr, 0u);
  EXPECT_EQ(params.e820_table[0].type, 1u);
}

TEST(BzImageLoader, RejectsBadImages) {
  GuestMemory memory(MEMORY);
  auto truncated = makeBzImage();
  truncated.resize(0x210);
  EXPECT_NE(loadErrorOf([&] { loadBzImage(memory, request(truncated)); }).find("truncated"),
            std::string::npos);

  auto badFlag = makeBzImage();
  badFlag[0x1fe] = 0;
  EXPECT_NE(loadErrorOf([&] { loadBzImage(memory, request(badFlag)); }).find("bad magic"), std::string::npos);

  EXPECT_NE(loadErrorOf([&] {
              loadBzImage(memory, request(makeBzImage(0x0204)));
            }).find("unsupported boot protocol version 2.04"),
            std::string::npos);
  EXPECT_NE(
      loadErrorOf([&] { loadBzImage(memory, request(makeBzImage(0x020f, 0))); }).find("no 64-bit entry"),
      std::string::npos);
  EXPECT_NE(loadErrorOf([&] {
              loadBzImage(memory, request(makeBzImage(0x020f, 1, 512u << 20)));
            }).find("too large for memory"),
            std::string::npos);
  EXPECT_NE(loadErrorOf([&] {
              loadBzImage(memory, request(makeBzImage(), std::string(3000, 'x')));
            }).find("command line"),
            std::string::npos);
}

TEST(KernelFormat, RejectsUnknownMagic) {
  std::vector<uint8_t> junk(4096, 0x90);
  EXPECT_NE(loadErrorOf([&] { detectKernelFormat(junk, "junk"); }).find("bad magic"), std::string::npos);
  std::vector<uint8_t> empty;
  EXPECT_NE(loadErrorOf([&] { detectKernelFormat(empty, "empty"); }).find("empty"), std::string::npos);
}

TEST(PvhLoader, LoadsSegmentsAndStartInfo) {
  GuestMemory memory(MEMORY);
  std::memset(memory.translate(0x100000, 8192), 0xee, 8192);  // bss must be zeroed.
  BootEntry entry = loadKernel(memory, request(makePvhElf(), "test=hello"));
  EXPECT_EQ(entry.mode, BootEntry::Mode::PROTECTED_32);
  EXPECT_EQ(entry.entry, 0x100010u);
  EXPECT_EQ(entry.bootInfo, layout::PVH_START_INFO);
  EXPECT_EQ(memory.translate(0x100000, 1)[3], 0xa3);
  EXPECT_EQ(memory.translate(0x100000 + 256 + 100, 1)[0], 0);

  uint32_t magic;
  memory.read(layout::PVH_START_INFO, {reinterpret_cast<uint8_t*>(&magic), 4});
  EXPECT_EQ(magic, 0x336ec578u);
  uint64_t cmdline;
  memory.read(layout::PVH_START_INFO + 24, {reinterpret_cast<uint8_t*>(&cmdline), 8});
  EXPECT_STREQ(reinterpret_cast<char*>(memory.translate(cmdline, 11)), "test=hello");
}

TEST(PvhLoader, RejectsBadElves) {
  GuestMemory memory(MEMORY);
  EXPECT_NE(loadErrorOf([&] {
              loadPvhElf(memory, request(makePvhElf(0x100000, false)));
            }).find("no PVH entry note"),
            std::string::npos);
  EXPECT_NE(loadErrorOf([&] { loadPvhElf(memory, request(makePvhElf(0x7000))); }).find("below 1 MiB"),
            std::string::npos);
  EXPECT_NE(loadErrorOf([&] {
              loadPvhElf(memory, request(makePvhElf(MEMORY - 1024)));
            }).find("too large for memory"),
            std::string::npos);

  auto truncated = makePvhElf();
  truncated.resize(0x900);  // Segment data cut off.
  EXPECT_NE(loadErrorOf([&] { loadPvhElf(memory, request(truncated)); }).find("past end of file"),
            std::string::npos);

  auto wrongMachine = makePvhElf();
  wrongMachine[18] = EM_AARCH64;
  EXPECT_NE(loadErrorOf([&] { loadPvhElf(memory, request(wrongMachine)); }).find("not an x86-64"),
            std::string::npos);

  auto hugeTable = makePvhElf();
  hugeTable[56] = 0xff;  // e_phnum
  hugeTable[57] = 0xff;
  EXPECT_NE(loadErrorOf([&] { loadPvhElf(memory, request(hugeTable)); }).find("program headers past end"),
            std::string::npos);

  auto badNote = makePvhElf();
  uint32_t hugeName = 0x7fffffff;
  std::memcpy(badNote.data() + 0x800, &hugeName, 4);
  EXPECT_NE(loadErrorOf([&] { loadPvhElf(memory, request(badNote)); }).find("truncated ELF note"),
            std::string::npos);
}

TEST(InitrdPlacement, RefusesWhatDoesNotFit) {
  GuestMemory memory(MEMORY);
  EXPECT_EQ(placeInitrd(memory, 4096, 0x200000, ~0ull), MEMORY - 4096);
  EXPECT_THROW(placeInitrd(memory, MEMORY, 0x200000, ~0ull), LoadError);
  EXPECT_THROW(placeInitrd(memory, 60 << 20, 8 << 20, ~0ull), LoadError);
}

}  // namespace
}  // namespace cellvisor

namespace cellvisor {
namespace {

std::string loadErrorOf(const std::string& path, uint64_t limit) {
  try {
    readImageFile(path, "kernel", limit);
  } catch (const LoadError& error) {
    return error.what();
  }
  return "";
}

TEST(ImageFile, RefusesWhatIsNotARegularFile) {
  // /dev/zero never ends: reading it whole used to hang the core.
  EXPECT_EQ(loadErrorOf("/dev/zero", MEMORY), "kernel /dev/zero: not a regular file (a character device)");
  EXPECT_EQ(loadErrorOf("/", MEMORY), "kernel /: not a regular file (a directory)");
  std::string fifo = ::testing::TempDir() + "/cellvisor-fifo-" + std::to_string(::getpid());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(loadErrorOf(fifo, MEMORY),
            "kernel " + fifo + ": not a regular file (a FIFO)");  // No writer: no wait.
  ::unlink(fifo.c_str());
  EXPECT_NE(loadErrorOf("/nonexistent/kernel", MEMORY).find("cannot open: No such file"), std::string::npos);
}

TEST(ImageFile, RefusesMoreThanGuestMemory) {
  std::string path = ::testing::TempDir() + "/cellvisor-big-" + std::to_string(::getpid());
  {
    std::ofstream file(path, std::ios::binary);
    file.seekp((4 << 20) + 0);
    file.put(1);
  }
  EXPECT_EQ(loadErrorOf(path, 4 << 20),
            "kernel " + path + ": 4194305 bytes is more than guest memory (4 MiB)");
  EXPECT_EQ(loadErrorOf(path, 8 << 20), "");
  EXPECT_EQ(readImageFile(path, "initrd", 8 << 20).size(), (4u << 20) + 1);
  ::unlink(path.c_str());
}

// Debian's own kernel through the bzImage loader (fetched by tools/fetch-linux.sh).
TEST(BzImageLoader, LoadsDebianKernel) {
  const char* path = std::getenv("CELLVISOR_LINUX_KERNEL");
  if (path == nullptr || access(path, R_OK) != 0) GTEST_SKIP() << "no Linux kernel: run tools/fetch-linux.sh";
  GuestMemory memory(512 << 20);
  BootRequest req;
  req.kernelPath = path;
  req.kernel = readImageFile(path, "kernel", 512 << 20);
  req.cmdline = "console=ttyS0";
  BootEntry entry = loadKernel(memory, req);
  EXPECT_EQ(entry.mode, BootEntry::Mode::LONG_64);
  boot_params params;
  memory.read(layout::ZERO_PAGE, {reinterpret_cast<uint8_t*>(&params), sizeof(params)});
  EXPECT_GE(params.hdr.version, 0x020f);
  EXPECT_EQ(entry.entry, (params.hdr.pref_address ? params.hdr.pref_address : 0x100000) + 0x200);
  EXPECT_TRUE(params.hdr.xloadflags & XLF_KERNEL_64);
  // The kernel version string the setup header points at is in the image.
  std::string version(reinterpret_cast<const char*>(req.kernel.data()) + 0x200 + params.hdr.kernel_version);
  EXPECT_EQ(version.rfind("6.", 0), 0u) << version;
}

}  // namespace
}  // namespace cellvisor
