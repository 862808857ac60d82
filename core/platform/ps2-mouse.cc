#include "core/platform/ps2-mouse.h"

#include <algorithm>

namespace cellvisor {
namespace {

enum Command : uint8_t {
  SCALING_1_1 = 0xe6,
  SCALING_2_1 = 0xe7,
  SET_RESOLUTION = 0xe8,
  STATUS = 0xe9,
  STREAM_MODE = 0xea,
  READ_DATA = 0xeb,
  WRAP_OFF = 0xec,
  WRAP_ON = 0xee,
  REMOTE_MODE = 0xf0,
  GET_ID = 0xf2,
  SET_RATE = 0xf3,
  ENABLE = 0xf4,
  DISABLE = 0xf5,
  DEFAULTS = 0xf6,
  RESET = 0xff,
};
constexpr uint8_t INTELLIMOUSE = 3;
constexpr uint8_t EXPLORER = 4;
constexpr uint8_t ALWAYS_ONE = 0x08;  // Bit 3 of a packet's first byte: how a driver finds packet starts.

}  // namespace

void Ps2Mouse::reset() {
  reporting_ = false;
  remote_ = false;
  wrap_ = false;
  scaling21_ = false;
  resolution_ = 2;
  rate_ = 100;
  awaiting_ = 0;
  dx_ = dy_ = dz_ = 0;
  buttonsChanged_ = false;
  polled_ = false;
  clearInput();
}

uint8_t Ps2Mouse::status() const {
  uint8_t left = buttons_ & 1, right = (buttons_ >> 1) & 1, middle = (buttons_ >> 2) & 1;
  return static_cast<uint8_t>((remote_ ? 0x40 : 0) | (reporting_ ? 0x20 : 0) | (scaling21_ ? 0x10 : 0) |
                              (left << 2) | (middle << 1) | right);
}

void Ps2Mouse::receive(uint8_t byte) {
  if (awaiting_ != 0) {
    parameter(byte);
    return;
  }
  if (wrap_ && byte != WRAP_OFF && byte != RESET) {
    beginReply();
    reply(byte);  // Wrap (echo) mode.
    return;
  }
  command(byte);
}

void Ps2Mouse::parameter(uint8_t byte) {
  beginReply();
  if (awaiting_ == SET_RATE) {
    rate_ = byte;
    knocks_[0] = knocks_[1];
    knocks_[1] = knocks_[2];
    knocks_[2] = byte;
    // IntelliMouse: rates 200, 100, 80; then, as one, Explorer: 200, 200, 80.
    if (knocks_[0] == 200 && knocks_[1] == 100 && knocks_[2] == 80) id_ = std::max(id_, INTELLIMOUSE);
    if (knocks_[0] == 200 && knocks_[1] == 200 && knocks_[2] == 80 && id_ == INTELLIMOUSE) id_ = EXPLORER;
  } else if (awaiting_ == SET_RESOLUTION) {
    resolution_ = byte & 3;
  }
  awaiting_ = 0;
  reply(ACK);
}

void Ps2Mouse::command(uint8_t byte) {
  beginReply();
  switch (byte) {
    case SCALING_1_1:
    case SCALING_2_1:
      scaling21_ = byte == SCALING_2_1;
      reply(ACK);
      break;
    case SET_RESOLUTION:
    case SET_RATE:
      awaiting_ = byte;
      reply(ACK);
      break;
    case STATUS:
      reply(ACK);
      reply(status());
      reply(resolution_);
      reply(rate_);
      break;
    case STREAM_MODE:
    case REMOTE_MODE:
      remote_ = byte == REMOTE_MODE;
      reply(ACK);
      break;
    case READ_DATA:
      reply(ACK);
      polled_ = true;  // One packet, even with nothing new.
      flushMotion();
      break;
    case WRAP_OFF:
    case WRAP_ON:
      wrap_ = byte == WRAP_ON;
      reply(ACK);
      break;
    case GET_ID:
      reply(ACK);
      reply(id_);
      break;
    case ENABLE:
      reporting_ = true;
      clearInput();
      reply(ACK);
      break;
    case DISABLE:
      reporting_ = false;
      clearInput();
      reply(ACK);
      break;
    case DEFAULTS:
      reset();
      reply(ACK);
      break;
    case RESET:
      reset();
      id_ = 0;
      std::fill(std::begin(knocks_), std::end(knocks_), 0);
      reply(ACK);
      reply(SELF_TEST_PASSED);
      reply(id_);
      break;
    default:
      // Vendor probes (touchpads' extended commands) end fast on this.
      reply(RESEND);
      break;
  }
}

void Ps2Mouse::pointer(uint8_t buttons, int x, int y) {
  if (last_) {
    dx_ += x - last_->first;
    dy_ -= y - last_->second;  // Screen y grows downwards, PS/2's upwards.
  }
  last_ = {x, y};
  // Bounded while nobody reads (the guest cannot take more than a packet's
  // worth of wheel at a time anyway).
  if (buttons & VNC_WHEEL_UP) dz_ = std::max(dz_ - 1, -127);
  if (buttons & VNC_WHEEL_DOWN) dz_ = std::min(dz_ + 1, 127);
  uint8_t ps2Buttons = static_cast<uint8_t>((buttons & VNC_LEFT ? 1 : 0) | (buttons & VNC_RIGHT ? 2 : 0) |
                                            (buttons & VNC_MIDDLE ? 4 : 0));
  if (ps2Buttons != buttons_) buttonsChanged_ = true;
  buttons_ = ps2Buttons;
  if (remote_) return;  // Counted until the guest polls (READ_DATA).
  if (!reporting_) {
    dx_ = dy_ = dz_ = 0;  // A disabled mouse in stream mode reports nothing later either.
    return;
  }
  flushMotion();
}

void Ps2Mouse::flushMotion() {
  if (reporting_ && !remote_) {
    while ((dx_ != 0 || dy_ != 0 || dz_ != 0 || buttonsChanged_) && queuePacket()) {
    }
  } else if (polled_) {
    queuePacket();  // READ_DATA: exactly one packet, whatever it holds.
  }
}

bool Ps2Mouse::queuePacket() {
  // Each packet moves at most 127 either way, the rest follows in the next.
  int dx = std::clamp(dx_, -127, 127), dy = std::clamp(dy_, -127, 127);
  int dz = std::clamp(dz_, id_ == EXPLORER ? -7 : -127, id_ == EXPLORER ? 7 : 127);
  uint8_t packet[4] = {
      static_cast<uint8_t>(ALWAYS_ONE | (buttons_ & 7) | (dx < 0 ? 0x10 : 0) | (dy < 0 ? 0x20 : 0)),
      static_cast<uint8_t>(dx),
      static_cast<uint8_t>(dy),
      static_cast<uint8_t>(id_ == EXPLORER ? (dz & 0x0f) : dz),
  };
  size_t length = id_ == INTELLIMOUSE || id_ == EXPLORER ? 4 : 3;
  if (!queueInput({packet, length})) return false;
  dx_ -= dx;
  dy_ -= dy;
  dz_ = id_ == INTELLIMOUSE || id_ == EXPLORER ? dz_ - dz : 0;
  buttonsChanged_ = false;
  polled_ = false;
  return true;
}

}  // namespace cellvisor
