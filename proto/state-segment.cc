#include "proto/state-segment.h"

#include <atomic>
#include <stdexcept>
#include <string>

#include "base/sealed-memfd.h"

namespace cellvisor {

StateSegment StateSegment::create() {
  UniqueFd memfd = createSealedMemfd("device-state", SIZE);
  Mapping mapping = mapSharedMemfd(memfd.get(), SIZE, "state segment");
  // Zero-filled by ftruncate; the server fills it in on first start.
  return StateSegment(std::move(memfd), std::move(mapping));
}

StateSegment StateSegment::open(UniqueFd memfd) {
  Mapping mapping = mapSharedMemfd(memfd.get(), SIZE, "state segment");
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
