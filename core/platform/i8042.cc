#include "core/platform/i8042.h"

#include "core/platform/ps2-scancodes.h"

namespace cellvisor {
namespace {

// Status register.
constexpr uint8_t OUTPUT_FULL = 0x01;
constexpr uint8_t SYSTEM_FLAG = 0x04;
constexpr uint8_t LAST_WRITE_COMMAND = 0x08;
constexpr uint8_t NOT_INHIBITED = 0x10;  // The keylock is open (Linux warns otherwise).
constexpr uint8_t OUTPUT_FROM_MOUSE = 0x20;

// Command byte (CTR).
constexpr uint8_t KEYBOARD_INTERRUPT = 0x01;
constexpr uint8_t MOUSE_INTERRUPT = 0x02;
constexpr uint8_t KEYBOARD_DISABLED = 0x10;
constexpr uint8_t MOUSE_DISABLED = 0x20;
constexpr uint8_t TRANSLATE = 0x40;
// What firmware leaves: translation on, the keyboard's interrupt on, the
// mouse port off until a driver wants it. A guest booted without firmware
// finds the same.
constexpr uint8_t RESET_COMMAND_BYTE = TRANSLATE | MOUSE_DISABLED | SYSTEM_FLAG | KEYBOARD_INTERRUPT;

// Output port: bit 0 low holds the CPU in reset, bit 1 gates A20.
constexpr uint8_t OUTPUT_PORT_RESET_VALUE = 0x03;
constexpr uint8_t OUTPUT_PORT_NOT_RESET = 0x01;

enum Command : uint8_t {
  READ_COMMAND_BYTE = 0x20,
  WRITE_COMMAND_BYTE = 0x60,
  DISABLE_MOUSE = 0xa7,
  ENABLE_MOUSE = 0xa8,
  TEST_MOUSE_PORT = 0xa9,
  SELF_TEST = 0xaa,
  TEST_KEYBOARD_PORT = 0xab,
  DISABLE_KEYBOARD = 0xad,
  ENABLE_KEYBOARD = 0xae,
  READ_INPUT_PORT = 0xc0,
  READ_OUTPUT_PORT = 0xd0,
  WRITE_OUTPUT_PORT = 0xd1,
  WRITE_KEYBOARD_OUTPUT = 0xd2,  // As if the keyboard had sent it.
  WRITE_MOUSE_OUTPUT = 0xd3,     // As if the mouse had sent it (Linux's loopback probe).
  WRITE_TO_MOUSE = 0xd4,
  PULSE_OUTPUT_PORT = 0xf0,  // 0xf0-0xff: pulse the output port's low bits that are 0.
};
constexpr uint8_t SELF_TEST_PASSED = 0x55;
constexpr uint8_t PORT_TEST_PASSED = 0x00;
constexpr uint8_t INPUT_PORT_VALUE = 0x80;  // Keyboard not inhibited.
constexpr uint8_t SET2_BREAK_PREFIX = 0xf0;

}  // namespace

I8042::I8042(MachineControl& control, IrqLine& keyboardIrq, IrqLine& mouseIrq)
    : control_(control),
      keyboardIrq_(keyboardIrq),
      mouseIrq_(mouseIrq),
      commandPort_(*this),
      commandByte_(RESET_COMMAND_BYTE),
      outputPort_(OUTPUT_PORT_RESET_VALUE) {}

uint8_t I8042::status() {
  std::lock_guard lock(mutex_);
  uint8_t value = NOT_INHIBITED | (commandByte_ & SYSTEM_FLAG);
  if (lastWriteCommand_) value |= LAST_WRITE_COMMAND;
  if (outputFull_) value |= OUTPUT_FULL | (outputSource_ == Source::MOUSE ? OUTPUT_FROM_MOUSE : 0);
  return value;
}

uint8_t I8042::commandByte() {
  std::lock_guard lock(mutex_);
  return commandByte_;
}

void I8042::read(uint64_t, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  // With nothing new the last byte reads again, as on real controllers.
  storeLittleEndian(data, output_);
  if (!outputFull_) return;
  outputFull_ = false;
  updateIrqsLocked();  // Drop the line, so that the next byte is a new edge.
  refillLocked();
}

void I8042::write(uint64_t, std::span<const uint8_t> data) {
  bool reset;
  {
    std::lock_guard lock(mutex_);
    lastWriteCommand_ = false;
    reset = dataLocked(data[0]);
    refillLocked();
  }
  if (reset) control_.requestExit(ExitStatus::REBOOT, "guest reset via the i8042's output port");
}

void I8042::command(uint8_t command) {
  bool reset;
  {
    std::lock_guard lock(mutex_);
    lastWriteCommand_ = true;
    reset = commandLocked(command);
    refillLocked();
  }
  if (reset) control_.requestExit(ExitStatus::REBOOT, "guest reset via the i8042 controller");
}

bool I8042::key(uint16_t code, bool down) {
  std::lock_guard lock(mutex_);
  bool taken = keyboard_.key(code, down);
  refillLocked();
  return taken;
}

void I8042::pointer(uint8_t buttons, int x, int y) {
  std::lock_guard lock(mutex_);
  mouse_.pointer(buttons, x, y);
  refillLocked();
}

void I8042::replyLocked(uint8_t byte, Source source) {
  if (replies_.size() < MAX_REPLIES) replies_.emplace_back(byte, source);
}

bool I8042::commandLocked(uint8_t command) {
  pending_ = 0;
  switch (command) {
    case READ_COMMAND_BYTE:
      replyLocked(commandByte_);
      break;
    case WRITE_COMMAND_BYTE:
    case WRITE_OUTPUT_PORT:
    case WRITE_KEYBOARD_OUTPUT:
    case WRITE_MOUSE_OUTPUT:
    case WRITE_TO_MOUSE:
      pending_ = command;
      break;
    case DISABLE_MOUSE:
      commandByte_ |= MOUSE_DISABLED;
      break;
    case ENABLE_MOUSE:
      commandByte_ &= static_cast<uint8_t>(~MOUSE_DISABLED);
      break;
    case TEST_MOUSE_PORT:
    case TEST_KEYBOARD_PORT:
      replyLocked(PORT_TEST_PASSED);
      break;
    case SELF_TEST:
      replyLocked(SELF_TEST_PASSED);
      break;
    case DISABLE_KEYBOARD:
      commandByte_ |= KEYBOARD_DISABLED;
      break;
    case ENABLE_KEYBOARD:
      commandByte_ &= static_cast<uint8_t>(~KEYBOARD_DISABLED);
      break;
    case READ_INPUT_PORT:
      replyLocked(INPUT_PORT_VALUE);
      break;
    case READ_OUTPUT_PORT:
      replyLocked(outputPort_);
      break;
    default:
      // Pulses: a 0 in bit 0 pulses the reset line.
      if (command >= PULSE_OUTPUT_PORT && (command & OUTPUT_PORT_NOT_RESET) == 0) return true;
      // Other commands (controller RAM, A20 shortcuts) change nothing here.
      break;
  }
  return false;
}

bool I8042::dataLocked(uint8_t value) {
  uint8_t pending = pending_;
  pending_ = 0;
  switch (pending) {
    case WRITE_COMMAND_BYTE:
      commandByte_ = value;
      break;
    case WRITE_OUTPUT_PORT:
      outputPort_ = value;
      return (value & OUTPUT_PORT_NOT_RESET) == 0;
    case WRITE_KEYBOARD_OUTPUT:
      replyLocked(value, Source::KEYBOARD);
      break;
    case WRITE_MOUSE_OUTPUT:
      replyLocked(value, Source::MOUSE);
      break;
    case WRITE_TO_MOUSE:
      commandByte_ &= static_cast<uint8_t>(~MOUSE_DISABLED);
      mouse_.receive(value);
      break;
    default:
      // A byte for the keyboard; sending it enables its interface.
      commandByte_ &= static_cast<uint8_t>(~KEYBOARD_DISABLED);
      keyboard_.receive(value);
      break;
  }
  return false;
}

void I8042::refillLocked() {
  while (!outputFull_) {
    if (!replies_.empty()) {
      std::tie(output_, outputSource_) = replies_.front();
      replies_.pop_front();
      outputFull_ = true;
    } else if (keyboard_.hasOutput() && !(commandByte_ & KEYBOARD_DISABLED)) {
      uint8_t byte = keyboard_.takeOutput();
      if (commandByte_ & TRANSLATE) {
        if (byte == SET2_BREAK_PREFIX) {
          breakPrefix_ = true;  // Folded into the next byte's top bit.
          continue;
        }
        byte = ps2::translateToSet1(byte);
        if (breakPrefix_) byte |= 0x80;
        breakPrefix_ = false;
      }
      output_ = byte;
      outputSource_ = Source::KEYBOARD;
      outputFull_ = true;
    } else if (mouse_.hasOutput() && !(commandByte_ & MOUSE_DISABLED)) {
      output_ = mouse_.takeOutput();
      outputSource_ = Source::MOUSE;
      outputFull_ = true;
    } else {
      break;
    }
  }
  updateIrqsLocked();
}

void I8042::updateIrqsLocked() {
  bool keyboard = outputFull_ && outputSource_ == Source::KEYBOARD && (commandByte_ & KEYBOARD_INTERRUPT);
  bool mouse = outputFull_ && outputSource_ == Source::MOUSE && (commandByte_ & MOUSE_INTERRUPT);
  if (keyboard != keyboardLevel_) keyboardIrq_.set(keyboard);
  if (mouse != mouseLevel_) mouseIrq_.set(mouse);
  keyboardLevel_ = keyboard;
  mouseLevel_ = mouse;
}

}  // namespace cellvisor
