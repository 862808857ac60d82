// The state segment: one memfd per device, shared by the device server, its
// supervisor and the core, that outlives every server instance. It starts
// with a header every device has (who owns the layout, the instance
// generation, the sandbox violation, the supervisor's verdict, and how to
// tell the guest the device failed); the rest is the device's own body
// (servers/runtime/virtio-state.h for virtio, its own for other devices). A
// restarted server maps the same segment and continues from it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/mapping.h"
#include "base/unique-fd.h"

namespace cellvisor {

// What the supervisor does to the body when the device is failed past its
// crash-loop limit, so the guest hears it in the device's own terms (virtio:
// DEVICE_NEEDS_RESET and a configuration interrupt; NVMe: controller fatal
// status) with no server running. Written by the server at start; the
// supervisor checks every offset against the body before applying it.
struct FailureNotice {
  static constexpr uint32_t MAX_OPS = 4;
  static constexpr uint32_t NO_VECTOR = ~0u;
  enum Op : uint8_t { NONE = 0, OR_BYTE = 1, ADD_BYTE = 2 };
  // A device with several like units (an AHCI controller's ports) names
  // each operation and read once with how often it repeats and how far
  // apart: unit k's is at offset + k * stride, for k below repeat (0 and 1
  // mean once).
  static constexpr uint32_t MAX_REPEAT = 64;
  uint32_t count;
  struct {
    uint32_t offset;  // Into the body.
    uint8_t op;
    uint8_t value;
    uint16_t repeat;
    uint32_t stride;
  } ops[MAX_OPS];
  // Offset of a 16-bit MSI-X vector number in the body to raise afterwards,
  // or NO_VECTOR.
  uint32_t vectorOffset;
  // What the core answers for register reads of the failed device, where
  // the device's own terms need more than the all-ones of a device that is
  // gone (NVMe: CSTS with CFS set). Other reads still answer all ones.
  static constexpr uint32_t MAX_READS = 2;
  uint32_t readCount;
  struct {
    uint8_t bar;
    uint8_t size;
    uint16_t repeat;
    uint32_t offset;
    uint32_t stride;
    uint32_t reserved;
    uint64_t value;
  } reads[MAX_READS];
};

struct StateHeader {
  uint32_t magic;          // The device's: which body layout follows ...
  uint32_t layoutVersion;  // ... and its version. 0: not set up yet.
  uint32_t generation;     // Bumped by every server instance that takes over.
  uint32_t restarts;
  // Syscall number + 1 of the call that broke the sandbox, 0 if none.
  uint32_t sandboxViolation;
  // Set by the supervisor past the crash-loop limit: nobody will serve this
  // device again, so the core stops waiting for an answer.
  uint32_t supervisorFailed;
  FailureNotice failureNotice;
  uint8_t reserved[256 - 24 - sizeof(FailureNotice)];
};
static_assert(sizeof(StateHeader) == 256);

class StateSegment {
 public:
  static constexpr size_t SIZE = 1 << 20;
  static constexpr size_t BODY_SIZE = SIZE - sizeof(StateHeader);

  static StateSegment create();
  // Throws std::runtime_error for a segment of the wrong size.
  static StateSegment open(UniqueFd memfd);
  int fd() const { return memfd_.get(); }
  StateHeader& header() const { return *mapping_.as<StateHeader>(); }
  std::span<uint8_t> body() const { return {mapping_.data() + sizeof(StateHeader), BODY_SIZE}; }
  template <typename Body>
  Body& body() const {
    static_assert(sizeof(Body) <= BODY_SIZE, "device state does not fit the state segment");
    return *reinterpret_cast<Body*>(mapping_.data() + sizeof(StateHeader));
  }
  std::span<uint8_t> bytes() const { return {mapping_.data(), SIZE}; }

 private:
  StateSegment(UniqueFd memfd, Mapping mapping) : memfd_(std::move(memfd)), mapping_(std::move(mapping)) {}
  UniqueFd memfd_;
  Mapping mapping_;
};

// A device server taking over the segment: RESTORED when it holds this
// device's state (a restart), FRESH when nobody set it up yet. Throws
// std::runtime_error for another device's or another version's layout.
enum class StateOrigin { FRESH, RESTORED };
StateOrigin claimState(StateHeader& header, uint32_t magic, uint32_t layoutVersion);
// After a fresh set-up: marks the body as this device's.
void publishState(StateHeader& header, uint32_t magic, uint32_t layoutVersion);

}  // namespace cellvisor
