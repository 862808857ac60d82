#include "proto/ring-segment.h"

#include <boost/interprocess/managed_external_buffer.hpp>
#include <stdexcept>

#include "base/sealed-memfd.h"

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
  UniqueFd memfd = createSealedMemfd("device-rings", SEGMENT_BYTES);
  Mapping mapping = mapSharedMemfd(memfd.get(), SEGMENT_BYTES, "ring segment");
  bip::managed_external_buffer segment(bip::create_only, mapping.data(), SEGMENT_BYTES);
  void* memory = segment.allocate_aligned(sizeof(DeviceRings), alignof(DeviceRings));
  auto* rings = new (memory) DeviceRings();
  segment.construct<RingDirectory>(RINGS_NAME)()->rings = rings;
  return RingSegment(std::move(memfd), std::move(mapping), rings);
}

RingSegment RingSegment::open(UniqueFd memfd) {
  Mapping mapping = mapSharedMemfd(memfd.get(), SEGMENT_BYTES, "ring segment");
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
