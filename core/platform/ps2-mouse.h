// A PS/2 mouse: the plain three-button protocol, IntelliMouse (a wheel, ID
// 3) and IntelliMouse Explorer (wheel and two more buttons, ID 4) once the
// guest unlocks them with their sample-rate knocks, as Linux's psmouse
// does. Motion arrives as absolute positions (a VNC pointer); the mouse
// reports the difference from the last one, as every relative device
// behind a VNC server must. Motion that does not fit the buffer is kept
// and sent as the guest reads.
#pragma once

#include <cstdint>
#include <optional>

#include "core/platform/ps2-device.h"

namespace cellvisor {

class Ps2Mouse : public Ps2Device {
 public:
  // RFB's button mask: left, middle, right, wheel up, wheel down.
  static constexpr uint8_t VNC_LEFT = 1, VNC_MIDDLE = 2, VNC_RIGHT = 4, VNC_WHEEL_UP = 8, VNC_WHEEL_DOWN = 16;

  Ps2Mouse() { reset(); }

  void receive(uint8_t byte) override;
  // The pointer is at (x, y) with `buttons` (VNC's mask) down.
  void pointer(uint8_t buttons, int x, int y);

  uint8_t deviceId() const { return id_; }
  bool reporting() const { return reporting_; }

 private:
  void reset();
  void command(uint8_t byte);
  void parameter(uint8_t byte);
  // Queues packets while there is motion (or a button change) to report and
  // room for them.
  void flushMotion();
  bool queuePacket();
  void inputDrained() override { flushMotion(); }
  uint8_t status() const;

  bool reporting_ = false;
  bool remote_ = false;
  bool wrap_ = false;
  bool scaling21_ = false;
  uint8_t resolution_ = 2;
  uint8_t rate_ = 100;
  uint8_t id_ = 0;
  uint8_t knocks_[3] = {};  // The last three sample rates set (ID unlock sequences).
  uint8_t awaiting_ = 0;
  // What is left to report.
  int dx_ = 0, dy_ = 0, dz_ = 0;
  uint8_t buttons_ = 0;  // PS/2 order: left, right, middle, 4th, 5th.
  bool buttonsChanged_ = false;
  bool polled_ = false;  // Remote mode's READ_DATA: the next packet goes out whatever it holds.
  std::optional<std::pair<int, int>> last_;  // The last absolute position seen.
};

}  // namespace cellvisor
