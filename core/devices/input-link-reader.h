// The core's end of a display's input link (proto/input-segment.h): on the
// I/O loop, drains the events its display server wrote and hands keys and
// pointer motion to the i8042's keyboard and mouse. The server is not
// trusted: a message that does not parse is skipped, a corrupt ring ends
// the link (the guest keeps running, without that display's input), a
// pointer or key code out of range is dropped by the devices, and a flood
// is read a bounded amount per loop turn. Keys wait in the ring while the
// keyboard's own 16 bytes are full (a guest reading slowly loses no key-up,
// so no key sticks), half a second at most; the rest of the link waits with
// them, in order.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "proto/input-segment.h"

namespace cellvisor {

class I8042;

class InputLinkReader {
 public:
  // `doorbell` is the read end of the link's pipe. `clientConnected` runs
  // (on the loop) for each client the server lets in.
  InputLinkReader(uv_loop_t* loop, const InputSegment& link, int doorbell, I8042& i8042,
                  std::function<void()> clientConnected, std::string deviceName);
  ~InputLinkReader();
  InputLinkReader(const InputLinkReader&) = delete;
  InputLinkReader& operator=(const InputLinkReader&) = delete;

  // Reads what the ring holds now (a bounded amount; the rest on a later
  // turn of the loop).
  void drain();
  uint64_t eventsRead() const { return events_; }
  // A key is waiting for room in the keyboard.
  bool keyWaiting() const { return waitingKey_.has_value(); }

 private:
  struct Key {
    uint16_t code;
    bool down;
  };
  // Delivers one parsed event; false when it is a key the keyboard has no
  // room for yet (kept in waitingKey_).
  bool deliver(const std::vector<uint8_t>& message);
  void retryLater();

  RingReader reader_;
  int doorbell_;
  I8042& i8042_;
  std::function<void()> clientConnected_;
  std::string deviceName_;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;  // The next turn, or a retry while the keyboard is full.
  std::vector<uint8_t> scratch_;
  std::optional<Key> waitingKey_;
  std::chrono::steady_clock::time_point waitingSince_;
  uint64_t events_ = 0;
  bool keyboardStalled_ = false;  // A key was given up: the guest does not read.
  bool malformedReported_ = false;
  bool ended_ = false;
};

}  // namespace cellvisor
