#include "core/devices/input-link-reader.h"

#include <unistd.h>

#include <chrono>
#include <iostream>

#include "core/platform/i8042.h"
#include "device.capnp.h"
#include "proto/message-channel.h"

namespace cellvisor {
namespace {

constexpr unsigned MAX_EVENTS_PER_TURN = 1024;
// While the keyboard is full, how soon to look again (a guest reads its
// 16 bytes in far less), and how long a key waits at most: a guest that
// does not read its keyboard at all loses keys, as with a real one, and
// the rest of the link (the pointer, clients arriving) goes on.
constexpr uint64_t KEYBOARD_RETRY_MS = 10;
constexpr auto KEY_WAIT_LIMIT = std::chrono::milliseconds(500);

}  // namespace

InputLinkReader::InputLinkReader(uv_loop_t* loop, const InputSegment& link, int doorbell, I8042& i8042,
                                 std::function<void()> clientConnected, std::string deviceName)
    : reader_(link.reader()),
      doorbell_(doorbell),
      i8042_(i8042),
      clientConnected_(std::move(clientConnected)),
      deviceName_(std::move(deviceName)) {
  timer_ = new uv_timer_t;
  uv_timer_init(loop, timer_);
  timer_->data = this;
  poll_ = new uv_poll_t;
  uv_poll_init(loop, poll_, doorbell_);
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* handle, int status, int) {
    auto* self = static_cast<InputLinkReader*>(handle->data);
    if (status < 0) return;
    emptyDoorbellPipe(self->doorbell_);
    self->drain();
  });
}

InputLinkReader::~InputLinkReader() {
  uv_close(reinterpret_cast<uv_handle_t*>(poll_),
           [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
}

void InputLinkReader::retryLater() {
  uv_timer_start(
      timer_, [](uv_timer_t* timer) { static_cast<InputLinkReader*>(timer->data)->drain(); },
      waitingKey_ ? KEYBOARD_RETRY_MS : 0, 0);
}

void InputLinkReader::drain() {
  if (ended_) return;
  if (waitingKey_) {
    bool taken = i8042_.key(waitingKey_->code, waitingKey_->down);
    if (!taken && std::chrono::steady_clock::now() - waitingSince_ < KEY_WAIT_LIMIT) {
      retryLater();
      return;
    }
    // Given up: the guest is not reading; until it takes a key again, keys
    // that do not fit are dropped at once.
    keyboardStalled_ = !taken;
    waitingKey_.reset();
  }
  // A server that writes as fast as we read must not keep the I/O loop to
  // itself: past a ring's worth, the rest waits for the loop's next turn.
  for (unsigned read = 0; read < MAX_EVENTS_PER_TURN; ++read) {
    switch (reader_.tryRead(scratch_)) {
      case RingReader::Status::EMPTY:
        return;
      case RingReader::Status::CORRUPT:
        std::cerr << "vmm-core: " << deviceName_
                  << ": its server corrupted the input link; input from it ends\n";
        uv_poll_stop(poll_);
        ended_ = true;
        return;
      case RingReader::Status::MESSAGE:
        break;
    }
    if (!deliver(scratch_)) {
      retryLater();
      return;
    }
  }
  retryLater();
}

bool InputLinkReader::deliver(const std::vector<uint8_t>& bytes) {
  try {
    ReceivedMessage message(bytes);
    auto event = message.root<proto::InputEvent>();
    ++events_;
    switch (event.which()) {
      case proto::InputEvent::KEY: {
        Key key{event.getKey().getCode(), event.getKey().getDown()};
        if (i8042_.key(key.code, key.down)) {
          keyboardStalled_ = false;
          return true;
        }
        if (keyboardStalled_) return true;
        waitingKey_ = key;
        waitingSince_ = std::chrono::steady_clock::now();
        return false;
      }
      case proto::InputEvent::POINTER: {
        auto pointer = event.getPointer();
        i8042_.pointer(pointer.getButtons(), pointer.getX(), pointer.getY());
        return true;
      }
      case proto::InputEvent::CLIENT_CONNECTED:
        clientConnected_();
        return true;
      default:
        return true;  // A newer server's event this core does not know.
    }
  } catch (const std::exception& error) {
    if (!malformedReported_) {
      std::cerr << "vmm-core: " << deviceName_ << ": malformed input event skipped: " << error.what() << '\n';
      malformedReported_ = true;
    }
  } catch (const kj::Exception&) {
    if (!malformedReported_) {
      std::cerr << "vmm-core: " << deviceName_ << ": malformed input event skipped\n";
      malformedReported_ = true;
    }
  }
  return true;
}

}  // namespace cellvisor
