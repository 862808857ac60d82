#include "servers/display/input-sender.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <unistd.h>

#include "device.capnp.h"
#include "proto/input-keys.h"

namespace cellvisor {

InputSender::InputSender(const InputSegment& link, int doorbell, std::span<uint8_t, KEYS_DOWN_BYTES> keysDown)
    : core_{link.writer(), doorbell}, keysDown_(keysDown) {}

int InputSender::bitOf(uint16_t code) {
  // Plain codes 0x00-0x7f, E0 codes 0x80-0xff, Pause (make only) not held.
  if (code < 0x80) return code;
  if ((code & 0xff80) == input::KEY_EXTENDED) return 0x80 | (code & 0x7f);
  return -1;
}

template <typename Fill>
bool InputSender::send(LinkEnd& link, Fill&& fill) {
  capnp::MallocMessageBuilder builder(32);
  fill(builder.initRoot<proto::InputEvent>());
  kj::Array<capnp::word> words = capnp::messageToFlatArray(builder);
  // A full ring means the core has not read for hundreds of events: the
  // input is dropped (as a keyboard overruns) rather than the server stalled.
  if (!link.writer.tryWrite(
          {reinterpret_cast<const uint8_t*>(words.begin()), words.size() * sizeof(capnp::word)})) {
    ++dropped_;
    return false;
  }
  ringDoorbellPipe(link.doorbell);
  return true;
}

bool InputSender::key(uint16_t code, bool down) {
  bool sent = send(core_, [&](proto::InputEvent::Builder event) {
    auto key = event.initKey();
    key.setDown(down);
    key.setCode(code);
  });
  // Only what the guest will see counts: a key-up that was not written
  // leaves the key down here, to be let go later.
  int bit = bitOf(code);
  if (sent && bit >= 0) {
    uint8_t mask = static_cast<uint8_t>(1u << (bit % 8));
    if (down) {
      keysDown_[bit / 8] |= mask;
    } else {
      keysDown_[bit / 8] &= static_cast<uint8_t>(~mask);
    }
  }
  return sent;
}

bool InputSender::pointer(uint8_t buttons, uint16_t x, uint16_t y, uint16_t width, uint16_t height) {
  return send(pointer_ ? *pointer_ : core_, [&](proto::InputEvent::Builder event) {
    auto pointer = event.initPointer();
    pointer.setButtons(buttons);
    pointer.setX(x);
    pointer.setY(y);
    pointer.setWidth(width);
    pointer.setHeight(height);
  });
}

bool InputSender::clientConnected() {
  return send(core_, [](proto::InputEvent::Builder event) { event.setClientConnected(); });
}

void InputSender::releaseAllKeys() {
  for (int bit = 0; bit < 0x100; ++bit) {
    if ((keysDown_[bit / 8] & (1u << (bit % 8))) == 0) continue;
    key(keyOfBit(bit), false);
  }
}

}  // namespace cellvisor
