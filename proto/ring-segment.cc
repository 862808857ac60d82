#include "proto/ring-segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/managed_external_buffer.hpp>

#include "base/system-error.h"

namespace cellvisor {
namespace {

namespace bip = boost::interprocess;
constexpr const char* RINGS_NAME = "device-rings";

// Named objects in a managed segment get only the allocator's default
// alignment; the rings want cache-line alignment. So the named object is a
// directory pointing at an aligned allocation.
struct RingDirectory {
  bip::offset_ptr<DeviceRings> rings;
};
// The rings plus room for the segment's own bookkeeping.
constexpr size_t SEGMENT_BYTES = sizeof(DeviceRings) + 64 * 1024;

}  // namespace

RingSegment RingSegment::create() {
  UniqueFd memfd(
      checkSyscall(::memfd_create("device-rings", MFD_CLOEXEC | MFD_ALLOW_SEALING), "memfd_create"));
  checkSyscall(::ftruncate(memfd.get(), SEGMENT_BYTES), "ftruncate ring segment");
  checkSyscall(::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
               "seal ring segment");
  Mapping mapping = Mapping::map(memfd.get(), SEGMENT_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED);
  bip::managed_external_buffer segment(bip::create_only, mapping.data(), SEGMENT_BYTES);
  void* memory = segment.allocate_aligned(sizeof(DeviceRings), alignof(DeviceRings));
  auto* rings = new (memory) DeviceRings();
  segment.construct<RingDirectory>(RINGS_NAME)()->rings = rings;
  return RingSegment(std::move(memfd), std::move(mapping), rings);
}

RingSegment RingSegment::open(UniqueFd memfd) {
  struct stat st {};
  checkSyscall(::fstat(memfd.get(), &st), "fstat ring segment");
  if (static_cast<size_t>(st.st_size) != SEGMENT_BYTES)
    throw std::runtime_error("ring segment has the wrong size");
  Mapping mapping = Mapping::map(memfd.get(), SEGMENT_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED);
  bip::managed_external_buffer segment(bip::open_only, mapping.data(), SEGMENT_BYTES);
  auto [directory, count] = segment.find<RingDirectory>(RINGS_NAME);
  auto* begin = mapping.data();
  auto inside = [&](const void* pointer, size_t size) {
    auto* at = static_cast<const uint8_t*>(pointer);
    return at >= begin && at + size <= begin + SEGMENT_BYTES;
  };
  if (directory == nullptr || count != 1 || !inside(directory, sizeof(RingDirectory))) {
    throw std::runtime_error("ring segment holds no valid rings");
  }
  DeviceRings* rings = directory->rings.get();
  if (!inside(rings, sizeof(DeviceRings)) || reinterpret_cast<uintptr_t>(rings) % alignof(DeviceRings) != 0) {
    throw std::runtime_error("ring segment holds no valid rings");
  }
  return RingSegment(std::move(memfd), std::move(mapping), rings);
}

}  // namespace cellvisor
