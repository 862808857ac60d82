// Watches one device server on the core's event loop and restarts it when it
// dies: at once the first time, with growing back-off when it keeps crashing,
// and past the crash-loop limit the device is failed and the guest told.
// Every exit is logged with how the process ended and counted.
#pragma once

#include <uv.h>

#include <chrono>
#include <deque>
#include <functional>

#include "core/devices/device-server-process.h"

namespace cellvisor {

class DeviceSupervisor {
 public:
  static constexpr int CRASH_LOOP_LIMIT = 10;                       // crashes ...
  static constexpr std::chrono::milliseconds CRASH_LOOP_WINDOW{2000};  // ... within this long

  DeviceSupervisor(uv_loop_t* loop, DeviceServerProcess& process, std::function<bool()> shuttingDown);
  ~DeviceSupervisor();
  DeviceSupervisor(const DeviceSupervisor&) = delete;
  DeviceSupervisor& operator=(const DeviceSupervisor&) = delete;

  // Closes the handles (on the loop thread, before the loop ends).
  void close();

 private:
  void watch();
  void onExit();
  void restartNow();

  uv_loop_t* loop_;
  DeviceServerProcess& process_;
  std::function<bool()> shuttingDown_;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  std::deque<std::chrono::steady_clock::time_point> crashes_;
  std::chrono::steady_clock::time_point exitSeen_;
};

}  // namespace cellvisor
