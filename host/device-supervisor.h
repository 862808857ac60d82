// Watches one device server on its supervisor's libuv loop (vmmd, or a
// standalone core) and restarts it when it dies: at once when the instance
// had been running a while, with growing back-off when instances die young (a request that crashes the server
// on every resubmission), and past the crash-loop limit of young deaths in a row the device is failed and the
// guest told. Every exit is logged with how the process ended and counted.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>

#include "host/device-server-process.h"

namespace cellvisor {

class DeviceSupervisor {
 public:
  static constexpr std::chrono::milliseconds YOUNG{250};  // An instance that dies younger ...
  static constexpr int CRASH_LOOP_LIMIT = 10;             // ... this many times in a row fails the device.

  // `changed` runs after every exit, restart or failure (status reports).
  DeviceSupervisor(uv_loop_t* loop, DeviceServerProcess& process, std::function<bool()> shuttingDown,
                   std::function<void()> changed = {});
  ~DeviceSupervisor();
  DeviceSupervisor(const DeviceSupervisor&) = delete;
  DeviceSupervisor& operator=(const DeviceSupervisor&) = delete;

  // Where restarts and failures are logged (default: stderr, with the
  // program's name).
  void setLog(std::function<void(const std::string&)> log) { log_ = std::move(log); }

  // Closes the handles (on the loop thread, before the loop ends).
  void close();

 private:
  void watch();
  void onExit();
  void restartNow();
  void log(const std::string& line) { log_(line); }

  uv_loop_t* loop_;
  DeviceServerProcess& process_;
  std::function<bool()> shuttingDown_;
  std::function<void()> changed_;
  std::function<void(const std::string&)> log_;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  int youngDeaths_ = 0;
};

}  // namespace cellvisor
