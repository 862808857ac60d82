#include "servers/runtime/state-segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>

#include "base/system-error.h"

namespace cellvisor {

StateSegment StateSegment::create() {
  UniqueFd memfd(
      checkSyscall(::memfd_create("device-state", MFD_CLOEXEC | MFD_ALLOW_SEALING), "memfd_create"));
  checkSyscall(::ftruncate(memfd.get(), sizeof(VirtioState)), "ftruncate state segment");
  checkSyscall(::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
               "seal state segment");
  Mapping mapping = Mapping::map(memfd.get(), sizeof(VirtioState), PROT_READ | PROT_WRITE, MAP_SHARED);
  // Zero-filled by ftruncate; the server fills it in on first start.
  return StateSegment(std::move(memfd), std::move(mapping));
}

StateSegment StateSegment::open(UniqueFd memfd) {
  struct stat st {};
  checkSyscall(::fstat(memfd.get(), &st), "fstat state segment");
  if (static_cast<size_t>(st.st_size) != sizeof(VirtioState)) {
    throw std::runtime_error("state segment has the wrong size (a different layout version?)");
  }
  Mapping mapping = Mapping::map(memfd.get(), sizeof(VirtioState), PROT_READ | PROT_WRITE, MAP_SHARED);
  return StateSegment(std::move(memfd), std::move(mapping));
}

}  // namespace cellvisor
