#include "vmmd/uv-in-kj.h"

#include <poll.h>

#include <iostream>

namespace cellvisor {
namespace {

// libuv adds a watcher started during a turn (a supervisor watching the
// successor it just started from an exit callback) to epoll only at the
// start of the next turn's poll phase, and uv_backend_timeout() does not
// count such watchers as work. There is no public call for it; the queue
// is in uv_loop_t's documented-private fields (libuv 1.44's layout: an
// empty queue points at itself). Only meaningful on a live loop: a loop
// with no handles never polls, and keeps its own signal watcher queued.
bool watchersAwaitRegistration(const uv_loop_t& loop) {
  return loop.watcher_queue[0] != static_cast<const void*>(&loop.watcher_queue);
}

}  // namespace

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

void UvInKj::wake() {
  if (woken_ && woken_->isWaiting()) woken_->fulfill();
}

kj::Promise<void> UvInKj::drive() {
  uv_run(&loop_, UV_RUN_NOWAIT);
  int timeout = -1;
  if (uv_loop_alive(&loop_)) {
    timeout = uv_backend_timeout(&loop_);
    // KJ watches the epoll fd edge-triggered: if events are still pending
    // after this round (libuv takes a bounded number per turn), come back
    // at once rather than wait for an edge that will not come.
    pollfd pending{uv_backend_fd(&loop_), POLLIN, 0};
    if (::poll(&pending, 1, 0) > 0 || watchersAwaitRegistration(loop_)) timeout = 0;
  }
  // else: uv_backend_timeout() is 0 for a loop with no active handles ("do
  // not block": uv_run would return at once), and uv_run does not even
  // poll then. Here that means nothing to watch until someone adds a
  // handle and calls wake(); taking the 0 literally made an idle vmmd spin
  // on a whole core.
  auto wake = kj::newPromiseAndFulfiller<void>();
  woken_ = kj::mv(wake.fulfiller);
  auto next = observer_->whenBecomesReadable().exclusiveJoin(kj::mv(wake.promise));
  if (timeout >= 0) next = next.exclusiveJoin(timer_.afterDelay(timeout * kj::MILLISECONDS));
  return next.then([this] {
    woken_ = nullptr;
    return drive();
  });
}

}  // namespace cellvisor
