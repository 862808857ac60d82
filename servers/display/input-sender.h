// The display server's end of its input links (proto/input-segment.h): what
// VNC clients do with keys and the pointer, as InputEvents for the core's
// PS/2 keyboard and mouse, or, for the pointer, for a tablet's server when
// the VM has one (its own link). Keys held down are remembered in the state
// segment, so that a client that leaves, or a server that is killed while
// a key is down, never leaves the guest with a key stuck: the keys are
// released when the client goes, and by the successor when it starts.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "proto/input-keys.h"
#include "proto/input-segment.h"
#include "proto/ring.h"

namespace cellvisor {

class InputSender {
 public:
  static constexpr size_t KEYS_DOWN_BYTES = 64;  // A bit per key code (below 0x200 after folding).

  // `doorbell` is the write end of the link's pipe; `keysDown` lives in the
  // state segment and outlives this instance.
  InputSender(const InputSegment& link, int doorbell, std::span<uint8_t, KEYS_DOWN_BYTES> keysDown);
  // From now on the pointer goes over `link` (a tablet's), not to the core.
  void sendPointerTo(const InputSegment& link, int doorbell) { pointer_.emplace(link.writer(), doorbell); }

  // Each returns false when the event could not be written (the ring is
  // full: the core has not read for hundreds of events).
  // `code`: a set-1 code, KEY_EXTENDED | code, or KEY_PAUSE.
  bool key(uint16_t code, bool down);
  bool pointer(uint8_t buttons, uint16_t x, uint16_t y, uint16_t width, uint16_t height);
  bool clientConnected();
  // Key-up for every key still down.
  void releaseAllKeys();
  uint64_t dropped() const { return dropped_; }

 public:
  // The key's bit in a keys-down set (0-255), -1 for Pause (never held).
  static int bitOf(uint16_t code);
  // The key a bit stands for.
  static uint16_t keyOfBit(int bit) {
    return static_cast<uint16_t>(bit < 0x80 ? bit : input::KEY_EXTENDED | (bit & 0x7f));
  }

 private:
  struct LinkEnd {
    RingWriter writer;
    int doorbell;  // The write end of the link's pipe.
  };
  template <typename Fill>
  bool send(LinkEnd& link, Fill&& fill);

  LinkEnd core_;
  std::optional<LinkEnd> pointer_;
  std::span<uint8_t, KEYS_DOWN_BYTES> keysDown_;
  uint64_t dropped_ = 0;
};

}  // namespace cellvisor
