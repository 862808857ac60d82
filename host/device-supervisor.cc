#include "host/device-supervisor.h"

#include <errno.h>
#include <fmt/format.h>

#include <iostream>

namespace cellvisor {

DeviceSupervisor::DeviceSupervisor(uv_loop_t* loop, DeviceServerProcess& process,
                                   std::function<bool()> shuttingDown, std::function<void()> changed)
    : loop_(loop), process_(process), shuttingDown_(std::move(shuttingDown)), changed_(std::move(changed)) {
  log_ = [](const std::string& line) { std::cerr << program_invocation_short_name << ": " << line << '\n'; };
  process_.setSupervised(true);
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  watch();
}

DeviceSupervisor::~DeviceSupervisor() {
  close();
}

void DeviceSupervisor::close() {
  auto closeHandle = [](uv_handle_t* handle) {
    uv_close(handle, [](uv_handle_t* h) {
      if (h->type == UV_POLL)
        delete reinterpret_cast<uv_poll_t*>(h);
      else
        delete reinterpret_cast<uv_timer_t*>(h);
    });
  };
  if (poll_ != nullptr) closeHandle(reinterpret_cast<uv_handle_t*>(poll_));
  if (timer_ != nullptr) closeHandle(reinterpret_cast<uv_handle_t*>(timer_));
  poll_ = nullptr;
  timer_ = nullptr;
}

void DeviceSupervisor::watch() {
  poll_ = new uv_poll_t;
  uv_poll_init(loop_, poll_, process_.pidfd());
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE,
                [](uv_poll_t* handle, int, int) { static_cast<DeviceSupervisor*>(handle->data)->onExit(); });
}

void DeviceSupervisor::onExit() {
  // The pidfd belongs to the dead instance: stop watching it before reaping.
  uv_poll_stop(poll_);
  uv_close(reinterpret_cast<uv_handle_t*>(poll_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  poll_ = nullptr;
  std::string how = process_.reap();
  if (shuttingDown_()) return;
  if (process_.takeRequestedExit()) {
    // Asked for (restart or upgrade): not a crash, no back-off.
    log(fmt::format("{}: restarting on request ({})", process_.deviceName(), process_.launch().binary));
    youngDeaths_ = 0;
    restartNow();
    return;
  }

  bool young = std::chrono::steady_clock::now() - started_ < YOUNG;
  youngDeaths_ = young ? youngDeaths_ + 1 : 0;
  if (youngDeaths_ >= CRASH_LOOP_LIMIT) {
    log(fmt::format("{}: {}; {} instances in a row died within {} ms: device failed, guest told to reset it",
                    process_.deviceName(), how, youngDeaths_, YOUNG.count()));
    process_.markFailed();
    if (changed_) changed_();
    return;
  }
  // Back off only while instances die young: 0, 10, 20, 40 ... 1000 ms.
  uint64_t delay = youngDeaths_ == 0 ? 0 : std::min<uint64_t>(1000, 10ull << (youngDeaths_ - 1));
  log(fmt::format("{}: {}; restarting (restart {}{})", process_.deviceName(), how, process_.restarts() + 1,
                  delay ? fmt::format(", after {} ms", delay) : ""));
  uv_timer_start(
      timer_, [](uv_timer_t* timer) { static_cast<DeviceSupervisor*>(timer->data)->restartNow(); }, delay, 0);
  if (changed_) changed_();
}

void DeviceSupervisor::restartNow() {
  if (shuttingDown_()) return;
  try {
    started_ = std::chrono::steady_clock::now();
    process_.restart();
  } catch (const std::exception& error) {
    log(fmt::format("{}: restart failed: {}", process_.deviceName(), error.what()));
    process_.markFailed();
    if (changed_) changed_();
    return;
  }
  watch();
  if (changed_) changed_();
}

}  // namespace cellvisor
