// Reads one fd on a libuv loop and feeds a UART, pausing while the UART's
// buffer is full. Shared by every backend that has input.
#pragma once

#include <uv.h>

#include <functional>
#include <vector>

#include "core/platform/uart16550.h"

namespace cellvisor {

class SerialInput {
 public:
  // `onClosed` runs on the loop thread when the fd reports EOF or an error;
  // reading has stopped then. It must not destroy this object synchronously.
  SerialInput(uv_loop_t* loop, int fd, Uart16550& uart, std::function<void()> onClosed);
  ~SerialInput();
  SerialInput(const SerialInput&) = delete;
  SerialInput& operator=(const SerialInput&) = delete;

 private:
  static void onReadable(uv_poll_t* poll, int status, int events);
  static void onSpace(uv_async_t* async);
  void drain();

  int fd_;
  Uart16550& uart_;
  std::function<void()> onClosed_;
  std::vector<uint8_t> pending_;
  size_t pendingOffset_ = 0;
  // Handles are heap-allocated and freed in their close callbacks, as libuv
  // requires; they never outlive the loop's next iteration.
  uv_poll_t* poll_;
  uv_async_t* space_;
};

}  // namespace cellvisor
