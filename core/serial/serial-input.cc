#include "core/serial/serial-input.h"

#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>

namespace cellvisor {

SerialInput::SerialInput(uv_loop_t* loop, int fd, Uart16550& uart, std::function<void()> onClosed)
    : fd_(fd), uart_(uart), onClosed_(std::move(onClosed)), poll_(new uv_poll_t), space_(nullptr) {
  // Not every fd can be polled (a regular file, /dev/null): no input then.
  if (int error = uv_poll_init(loop, poll_, fd_); error < 0) {
    delete poll_;
    throw std::runtime_error(std::string("cannot watch serial input: ") + uv_strerror(error));
  }
  poll_->data = this;
  space_ = new uv_async_t;
  uv_async_init(loop, space_, &SerialInput::onSpace);
  space_->data = this;
  uart_.setRxSpaceCallback([async = space_] { uv_async_send(async); });
  uv_poll_start(poll_, UV_READABLE, &SerialInput::onReadable);
}

SerialInput::~SerialInput() {
  uart_.setRxSpaceCallback(nullptr);
  uv_poll_stop(poll_);
  uv_close(reinterpret_cast<uv_handle_t*>(poll_),
           [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
  uv_close(reinterpret_cast<uv_handle_t*>(space_),
           [](uv_handle_t* handle) { delete reinterpret_cast<uv_async_t*>(handle); });
}

void SerialInput::onReadable(uv_poll_t* poll, int status, int) {
  auto* self = static_cast<SerialInput*>(poll->data);
  if (status < 0) {
    uv_poll_stop(poll);
    self->onClosed_();
    return;
  }
  uint8_t buffer[512];
  ssize_t count = ::read(self->fd_, buffer, sizeof(buffer));
  if (count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR)) {
    uv_poll_stop(poll);
    self->onClosed_();
    return;
  }
  if (count < 0) return;
  self->pending_.assign(buffer, buffer + count);
  self->pendingOffset_ = 0;
  self->drain();
}

void SerialInput::onSpace(uv_async_t* async) {
  static_cast<SerialInput*>(async->data)->drain();
}

void SerialInput::drain() {
  std::span<const uint8_t> rest(pending_.data() + pendingOffset_, pending_.size() - pendingOffset_);
  pendingOffset_ += uart_.receive(rest);
  if (pendingOffset_ < pending_.size()) {
    uv_poll_stop(poll_);  // Wait for the guest to make room.
  } else {
    pending_.clear();
    pendingOffset_ = 0;
    uv_poll_start(poll_, UV_READABLE, &SerialInput::onReadable);
  }
}

}  // namespace cellvisor
