// The input link: one ring, one way, from a display server (which turns VNC
// clients' keys and pointer into InputEvents, proto/device.capnp) to the
// device that owns the guest's keyboard and pointer: the core's i8042. The
// supervisor makes it with the display's other resources and hands it to
// both ends, so it outlives every display server instance (events a killed
// server wrote are still read) and a successor writes on where its
// predecessor stopped. The reader trusts nothing in it (proto/ring.h).
// Its doorbell is a pipe, not an eventfd: the server holds only the write
// end and the core only the read end, so the server can neither drain the
// core's wake-ups nor make the core's reads block (an eventfd is one open
// file for both, its O_NONBLOCK flag and counter shared).
#pragma once

#include <atomic>
#include <cstdint>

#include "base/mapping.h"
#include "base/unique-fd.h"
#include "proto/doorbell-pipe.h"
#include "proto/ring.h"

namespace cellvisor {

constexpr uint32_t INPUT_RING_BYTES = 16 * 1024;  // Hundreds of events: far more than a guest lags.

struct InputLinkLayout {
  RingIndices indices;
  alignas(64) uint8_t events[INPUT_RING_BYTES];
};

class InputSegment {
 public:
  static InputSegment create();
  // Throws std::runtime_error when the memfd is not an input link.
  static InputSegment open(UniqueFd memfd);

  int fd() const { return memfd_.get(); }
  RingWriter writer() const { return {&layout().indices, layout().events, INPUT_RING_BYTES}; }
  RingReader reader() const { return {&layout().indices, layout().events, INPUT_RING_BYTES}; }

 private:
  InputSegment(UniqueFd memfd, Mapping mapping) : memfd_(std::move(memfd)), mapping_(std::move(mapping)) {}
  InputLinkLayout& layout() const { return *mapping_.as<InputLinkLayout>(); }

  UniqueFd memfd_;
  Mapping mapping_;
};

}  // namespace cellvisor
