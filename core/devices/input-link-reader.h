// The core's end of a display's input link (proto/input-segment.h): on the
// I/O loop, drains the events its display server wrote and hands keys and
// pointer motion to the i8042's keyboard and mouse. The server is not
// trusted: a message that does not parse is skipped, a corrupt ring ends
// the link (the guest keeps running, without that display's input), and a
// pointer or key code out of range is dropped by the devices.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "proto/input-segment.h"

namespace cellvisor {

class I8042;

class InputLinkReader {
 public:
  // `clientConnected` runs (on the loop) for each client the server lets in.
  InputLinkReader(uv_loop_t* loop, const InputSegment& link, int doorbell, I8042& i8042,
                  std::function<void()> clientConnected, std::string deviceName);
  ~InputLinkReader();
  InputLinkReader(const InputLinkReader&) = delete;
  InputLinkReader& operator=(const InputLinkReader&) = delete;

  // Reads every event in the ring now.
  void drain();
  uint64_t eventsRead() const { return events_; }

 private:
  RingReader reader_;
  int doorbell_;
  I8042& i8042_;
  std::function<void()> clientConnected_;
  std::string deviceName_;
  uv_poll_t* poll_ = nullptr;
  std::vector<uint8_t> scratch_;
  uint64_t events_ = 0;
  bool malformedReported_ = false;
};

}  // namespace cellvisor
