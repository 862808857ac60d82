#include "core/devices/input-link-reader.h"

#include <sys/eventfd.h>

#include <iostream>

#include "core/platform/i8042.h"
#include "device.capnp.h"
#include "proto/message-channel.h"

namespace cellvisor {
namespace {

constexpr unsigned MAX_EVENTS_PER_TURN = 1024;

}  // namespace

InputLinkReader::InputLinkReader(uv_loop_t* loop, const InputSegment& link, int doorbell, I8042& i8042,
                                 std::function<void()> clientConnected, std::string deviceName)
    : reader_(link.reader()),
      doorbell_(doorbell),
      i8042_(i8042),
      clientConnected_(std::move(clientConnected)),
      deviceName_(std::move(deviceName)) {
  poll_ = new uv_poll_t;
  uv_poll_init(loop, poll_, doorbell_);
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* handle, int status, int) {
    auto* self = static_cast<InputLinkReader*>(handle->data);
    if (status < 0) return;
    eventfd_t count;
    eventfd_read(self->doorbell_, &count);
    self->drain();
  });
}

InputLinkReader::~InputLinkReader() {
  uv_close(reinterpret_cast<uv_handle_t*>(poll_),
           [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
}

void InputLinkReader::drain() {
  // A server that writes as fast as we read must not keep the I/O loop to
  // itself: past a ring's worth, the rest waits for the loop's next turn.
  for (unsigned read = 0;; ++read) {
    if (read == MAX_EVENTS_PER_TURN) {
      eventfd_write(doorbell_, 1);
      return;
    }
    switch (reader_.tryRead(scratch_)) {
      case RingReader::Status::EMPTY:
        return;
      case RingReader::Status::CORRUPT:
        std::cerr << "vmm-core: " << deviceName_
                  << ": its server corrupted the input link; input from it ends\n";
        uv_poll_stop(poll_);
        return;
      case RingReader::Status::MESSAGE:
        break;
    }
    try {
      ReceivedMessage message(scratch_);
      auto event = message.root<proto::InputEvent>();
      ++events_;
      switch (event.which()) {
        case proto::InputEvent::KEY:
          i8042_.key(event.getKey().getCode(), event.getKey().getDown());
          break;
        case proto::InputEvent::POINTER: {
          auto pointer = event.getPointer();
          i8042_.pointer(pointer.getButtons(), pointer.getX(), pointer.getY());
          break;
        }
        case proto::InputEvent::CLIENT_CONNECTED:
          clientConnected_();
          break;
        default:
          break;  // A newer server's event this core does not know.
      }
    } catch (const std::exception& error) {
      if (!malformedReported_) {
        std::cerr << "vmm-core: " << deviceName_ << ": malformed input event skipped: " << error.what()
                  << '\n';
        malformedReported_ = true;
      }
    } catch (const kj::Exception&) {
      if (!malformedReported_) {
        std::cerr << "vmm-core: " << deviceName_ << ": malformed input event skipped\n";
        malformedReported_ = true;
      }
    }
  }
}

}  // namespace cellvisor
