#include "proto/state-segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <string>

#include "base/system-error.h"

namespace cellvisor {

StateSegment StateSegment::create() {
  UniqueFd memfd(
      checkSyscall(::memfd_create("device-state", MFD_CLOEXEC | MFD_ALLOW_SEALING), "memfd_create"));
  checkSyscall(::ftruncate(memfd.get(), SIZE), "ftruncate state segment");
  checkSyscall(::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
               "seal state segment");
  Mapping mapping = Mapping::map(memfd.get(), SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
  // Zero-filled by ftruncate; the server fills it in on first start.
  return StateSegment(std::move(memfd), std::move(mapping));
}

StateSegment StateSegment::open(UniqueFd memfd) {
  struct stat st {};
  checkSyscall(::fstat(memfd.get(), &st), "fstat state segment");
  if (static_cast<size_t>(st.st_size) != SIZE) {
    throw std::runtime_error("state segment has the wrong size (a different protocol version?)");
  }
  Mapping mapping = Mapping::map(memfd.get(), SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
  return StateSegment(std::move(memfd), std::move(mapping));
}

StateOrigin claimState(StateHeader& header, uint32_t magic, uint32_t layoutVersion) {
  uint32_t found = std::atomic_ref<uint32_t>(header.magic).load(std::memory_order_acquire);
  if (found == 0) return StateOrigin::FRESH;
  if (found != magic || header.layoutVersion != layoutVersion) {
    throw std::runtime_error("state segment layout " + std::to_string(found) + "/" +
                             std::to_string(header.layoutVersion) + " is not ours (" + std::to_string(magic) +
                             "/" + std::to_string(layoutVersion) + ")");
  }
  return StateOrigin::RESTORED;
}

void publishState(StateHeader& header, uint32_t magic, uint32_t layoutVersion) {
  header.layoutVersion = layoutVersion;
  std::atomic_ref<uint32_t>(header.magic).store(magic, std::memory_order_release);
}

}  // namespace cellvisor
