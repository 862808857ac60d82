// The shared segment holding a device's request and reply rings, laid out by
// Boost.Interprocess inside a memfd so it can be handed to the server over a
// unix socket. The creator (core or harness) constructs it; the server opens
// it and finds the rings by name. Afterwards neither side walks the segment's
// index again, so a corrupted segment cannot mislead the core.
#pragma once

#include <atomic>
#include <memory>

#include "base/mapping.h"
#include "base/unique-fd.h"
#include "proto/ring.h"

namespace cellvisor {

constexpr uint32_t DEVICE_RING_BYTES = 64 * 1024;
constexpr uint32_t LEDGER_REPLY_BYTES = 4096;

// What makes a register access happen exactly once although a server may be
// replaced while the core waits for it (a crash, a live upgrade): the core
// re-sends it to the successor, and a copy may still sit unread in the ring.
struct RequestLedger {
  // Written by the core: the sequence of the one request it still waits
  // for, 0 when none. A server executes only that one: anything else in the
  // ring was given up by the core (its wait timed out) and must not happen
  // late, on this instance or a successor.
  std::atomic<uint64_t> awaited;
  // Written by the server: the last request it executed and the reply it
  // sent (a flat Cap'n Proto message), so that a second copy, or a successor
  // asked again, answers from here instead of executing it twice (a
  // read-to-clear register). The core never reads these.
  std::atomic<uint64_t> answered;
  uint32_t replyBytes;
  uint32_t reserved;
  alignas(8) uint8_t reply[LEDGER_REPLY_BYTES];
};

struct DeviceRings {
  RingIndices requestIndices;
  RingIndices replyIndices;
  alignas(64) RequestLedger ledger;
  alignas(64) uint8_t requests[DEVICE_RING_BYTES];
  alignas(64) uint8_t replies[DEVICE_RING_BYTES];
};

class RingSegment {
 public:
  static RingSegment create();
  // Throws std::runtime_error if the segment does not hold valid rings.
  static RingSegment open(UniqueFd memfd);

  int fd() const { return memfd_.get(); }
  DeviceRings& rings() const { return *rings_; }

  // The core's ends: it writes requests and reads replies.
  RingWriter requestWriter() const { return {&rings_->requestIndices, rings_->requests, DEVICE_RING_BYTES}; }
  RingReader replyReader() const { return {&rings_->replyIndices, rings_->replies, DEVICE_RING_BYTES}; }
  // The server's ends.
  RingReader requestReader() const { return {&rings_->requestIndices, rings_->requests, DEVICE_RING_BYTES}; }
  RingWriter replyWriter() const { return {&rings_->replyIndices, rings_->replies, DEVICE_RING_BYTES}; }

 private:
  RingSegment(UniqueFd memfd, Mapping mapping, DeviceRings* rings)
      : memfd_(std::move(memfd)), mapping_(std::move(mapping)), rings_(rings) {}

  UniqueFd memfd_;
  Mapping mapping_;
  DeviceRings* rings_;
};

}  // namespace cellvisor
