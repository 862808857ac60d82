#include "core/boot/kernel-loader.h"

#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "base/guest-memory.h"
#include "base/system-error.h"
#include "base/unique-fd.h"
#include "core/boot/boot-layout.h"
#include "core/boot/load-error.h"

namespace cellvisor {

namespace {

const char* fileKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a plain file";
}

}  // namespace

std::vector<uint8_t> readImageFile(const std::string& path, const char* what, uint64_t limit,
                                   const char* limitName) {
  auto fail = [&](const std::string& why) { return LoadError(fmt::format("{} {}: {}", what, path, why)); };
  // O_NONBLOCK: opening a FIFO must not wait for a writer; the type check
  // below refuses it anyway.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) throw fail(std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw fail(std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw fail(fmt::format("not a regular file ({})", fileKind(st.st_mode)));
  auto size = static_cast<uint64_t>(st.st_size);
  if (size > limit) {
    throw fail(fmt::format("{} bytes is more than {} ({} MiB)", size, limitName, limit >> 20));
  }
  std::vector<uint8_t> bytes(size);
  // Read what fstat saw; a file that shrinks meanwhile is a read error.
  for (size_t done = 0; done < bytes.size();) {
    ssize_t count = retryOnEintr([&] { return ::read(fd.get(), bytes.data() + done, bytes.size() - done); });
    if (count < 0) throw fail(std::string("read error: ") + std::strerror(errno));
    if (count == 0) throw fail("file shrank while being read");
    done += static_cast<size_t>(count);
  }
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
