// The i8042 keyboard controller at ports 0x60 (data) and 0x64 (status and
// command) with a PS/2 keyboard on its first port (IRQ 1) and a PS/2 mouse
// on its auxiliary port (IRQ 12): what firmware, Linux and Windows drive on
// any PC without a driver of their own. One output buffer for the guest,
// filled from the controller's own replies first, then the keyboard (its
// set-2 bytes translated to set 1 while the command byte asks for it), then
// the mouse; each byte filled raises its port's interrupt afresh (the ISA
// lines are edge triggered). Keys and pointer motion come from the VNC
// clients of a display server (core/machine/input-link.h). The pulse-reset
// command (0xFE) and output-port writes that drop the reset line reset the
// machine, as on a PC.
#pragma once

#include <deque>
#include <mutex>
#include <utility>

#include "core/platform/io-device.h"
#include "core/platform/machine-control.h"
#include "core/platform/ps2-keyboard.h"
#include "core/platform/ps2-mouse.h"

namespace cellvisor {

class I8042 : public IoDevice {
 public:
  static constexpr uint16_t DATA_PORT = 0x60;
  static constexpr uint16_t COMMAND_PORT = 0x64;
  static constexpr uint32_t KEYBOARD_IRQ = 1;
  static constexpr uint32_t MOUSE_IRQ = 12;

  I8042(MachineControl& control, IrqLine& keyboardIrq, IrqLine& mouseIrq);

  // This object answers the data port; the command port is its own range.
  IoDevice& commandPort() { return commandPort_; }

  void read(uint64_t, std::span<uint8_t> data) override;
  void write(uint64_t, std::span<const uint8_t> data) override;

  // Input from outside the guest (any thread). key(): false when the
  // keyboard has no room for the key's bytes now (Ps2Keyboard::key).
  bool key(uint16_t code, bool down);
  void pointer(uint8_t buttons, int x, int y);

  // For tests: the command byte (CTR) and the attached devices.
  uint8_t commandByte();
  const Ps2Keyboard& keyboard() const { return keyboard_; }
  const Ps2Mouse& mouse() const { return mouse_; }

 private:
  class CommandPort : public IoDevice {
   public:
    explicit CommandPort(I8042& controller) : controller_(controller) {}
    void read(uint64_t, std::span<uint8_t> data) override { storeLittleEndian(data, controller_.status()); }
    void write(uint64_t, std::span<const uint8_t> data) override { controller_.command(data[0]); }

   private:
    I8042& controller_;
  };
  enum class Source : uint8_t { KEYBOARD, MOUSE };

  uint8_t status();
  void command(uint8_t command);
  // Each returns whether the guest asked for a machine reset.
  bool commandLocked(uint8_t command);
  bool dataLocked(uint8_t value);
  void replyLocked(uint8_t byte, Source source = Source::KEYBOARD);
  // Moves the next byte into the empty output buffer, then sets the lines.
  void refillLocked();
  void updateIrqsLocked();

  MachineControl& control_;
  IrqLine& keyboardIrq_;
  IrqLine& mouseIrq_;
  CommandPort commandPort_;
  std::mutex mutex_;
  Ps2Keyboard keyboard_;
  Ps2Mouse mouse_;
  // The controller's own replies, bounded: a real 8042 holds one byte, and
  // a guest that asks without reading must not grow the core.
  static constexpr size_t MAX_REPLIES = 16;
  std::deque<std::pair<uint8_t, Source>> replies_;
  uint8_t commandByte_;
  uint8_t outputPort_;
  uint8_t pending_ = 0;  // The command whose data byte the next data write is.
  bool lastWriteCommand_ = false;
  bool breakPrefix_ = false;  // Translating: a set-2 break prefix was swallowed.
  bool outputFull_ = false;
  uint8_t output_ = 0;
  Source outputSource_ = Source::KEYBOARD;
  bool keyboardLevel_ = false;
  bool mouseLevel_ = false;
};

}  // namespace cellvisor
