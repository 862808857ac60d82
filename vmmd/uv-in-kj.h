// A libuv loop driven from KJ's event loop. vmmd serves Cap'n Proto RPC on
// KJ and supervises device servers with the libuv code a standalone core
// uses (DeviceSupervisor): KJ watches libuv's backend (epoll) fd and its
// next timer, and runs the libuv loop without blocking whenever either fires.
#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <uv.h>

namespace cellvisor {

class UvInKj {
 public:
  explicit UvInKj(kj::AsyncIoContext& io);
  // Every handle on the loop must be closed by then.
  ~UvInKj();
  UvInKj(const UvInKj&) = delete;
  UvInKj& operator=(const UvInKj&) = delete;

  uv_loop_t* loop() { return &loop_; }

 private:
  kj::Promise<void> drive();

  uv_loop_t loop_{};
  kj::Timer& timer_;
  kj::Own<kj::UnixEventPort::FdObserver> observer_;
  kj::Promise<void> task_ = nullptr;
};

}  // namespace cellvisor
