// A libuv loop driven from KJ's event loop. vmmd serves Cap'n Proto RPC on
// KJ and supervises device servers with the libuv code a standalone core
// uses (DeviceSupervisor): KJ watches libuv's backend (epoll) fd and its
// next timer, and runs the libuv loop without blocking whenever either fires.
//
// libuv registers a new watcher with epoll, and learns of a new timer, only
// inside uv_run: code on the KJ side that starts or closes handles calls
// wake() so the loop takes them in. With no handles at all there is nothing
// to wait for and vmmd sleeps until a wake() or an RPC.
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
  // Runs the libuv loop once soon (from KJ's loop, not from inside this
  // call): after handles were started, stopped or closed outside it.
  void wake();

 private:
  kj::Promise<void> drive();

  uv_loop_t loop_{};
  kj::Timer& timer_;
  kj::Own<kj::UnixEventPort::FdObserver> observer_;
  kj::Own<kj::PromiseFulfiller<void>> woken_;
  kj::Promise<void> task_ = nullptr;
};

}  // namespace cellvisor
