#include "vmmd/uv-in-kj.h"

#include <poll.h>

#include <iostream>

namespace cellvisor {

UvInKj::UvInKj(kj::AsyncIoContext& io) : timer_(io.provider->getTimer()) {
  uv_loop_init(&loop_);
  observer_ = kj::heap<kj::UnixEventPort::FdObserver>(io.unixEventPort, uv_backend_fd(&loop_),
                                                      kj::UnixEventPort::FdObserver::OBSERVE_READ);
  task_ = drive().eagerlyEvaluate([](kj::Exception&& error) {
    std::cerr << "vmmd: the supervisors' loop stopped: " << error.getDescription().cStr() << '\n';
  });
}

UvInKj::~UvInKj() {
  task_ = nullptr;
  observer_ = nullptr;
  // Let the close callbacks of handles closed last run, then let go.
  uv_run(&loop_, UV_RUN_NOWAIT);
  uv_loop_close(&loop_);
}

kj::Promise<void> UvInKj::drive() {
  uv_run(&loop_, UV_RUN_NOWAIT);
  int timeout = uv_backend_timeout(&loop_);
  // KJ watches the epoll fd edge-triggered: if events are still pending
  // after this round (libuv takes a bounded number per turn), come back at
  // once rather than wait for an edge that will not come.
  pollfd pending{uv_backend_fd(&loop_), POLLIN, 0};
  if (::poll(&pending, 1, 0) > 0) timeout = 0;
  auto next = observer_->whenBecomesReadable();
  if (timeout >= 0) next = next.exclusiveJoin(timer_.afterDelay(timeout * kj::MILLISECONDS));
  return next.then([this] { return drive(); });
}

}  // namespace cellvisor
