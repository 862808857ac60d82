// What the i8042 sees of a PS/2 device behind one of its ports: bytes the
// device has for the host, and bytes the host sends it. Replies to a
// command go ahead of queued input (scan codes, motion packets), as on
// real devices, whose command replies preempt their input buffer; a new
// command drops unread replies to the last one. Input is bounded by the
// 16 bytes real devices buffer: past that it is dropped (a keyboard) or held
// back (a mouse's motion).
#pragma once

#include <cstdint>
#include <deque>
#include <span>

namespace cellvisor {

class Ps2Device {
 public:
  static constexpr size_t INPUT_BYTES = 16;

  virtual ~Ps2Device() = default;
  // A byte the host wrote to the device.
  virtual void receive(uint8_t byte) = 0;

  bool hasOutput() const { return !replies_.empty() || !input_.empty(); }
  // The next byte for the host; only when hasOutput().
  uint8_t takeOutput() {
    std::deque<uint8_t>& from = replies_.empty() ? input_ : replies_;
    uint8_t byte = from.front();
    from.pop_front();
    if (input_.empty()) inputDrained();
    return byte;
  }

 protected:
  void beginReply() { replies_.clear(); }
  void reply(uint8_t byte) { replies_.push_back(byte); }
  // Queues a whole input sequence, or nothing when it does not fit.
  bool queueInput(std::span<const uint8_t> bytes) {
    if (input_.size() + bytes.size() > INPUT_BYTES) return false;
    input_.insert(input_.end(), bytes.begin(), bytes.end());
    return true;
  }
  void clearInput() { input_.clear(); }
  size_t inputRoom() const { return INPUT_BYTES - input_.size(); }
  // The input buffer has emptied: a device holding input back may queue it.
  virtual void inputDrained() {}

  static constexpr uint8_t ACK = 0xfa;
  static constexpr uint8_t RESEND = 0xfe;  // "Not understood": guests give up on the command at once.
  static constexpr uint8_t SELF_TEST_PASSED = 0xaa;

 private:
  std::deque<uint8_t> replies_;
  std::deque<uint8_t> input_;
};

}  // namespace cellvisor
