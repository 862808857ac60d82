// A 16550A UART (COM1/COM2): the registers a driver programs, a receive FIFO
// fed by the backend, and a level interrupt on the ISA IRQ line. Output goes
// straight to the backend; there is no baud-rate pacing.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

#include "core/platform/io-device.h"

namespace cellvisor {

class SerialOutput {
 public:
  virtual ~SerialOutput() = default;
  virtual void writeOutput(std::span<const uint8_t> bytes) = 0;
};

class Uart16550 : public IoDevice {
 public:
  static constexpr size_t RX_BUFFER = 4096;

  Uart16550(IrqLine& irq, SerialOutput& output) : irq_(irq), output_(output) {}

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // Queues bytes typed by the user; returns how many fit. The rest must wait
  // for `onRxSpace`, so nothing typed is lost.
  size_t receive(std::span<const uint8_t> bytes);
  // Called (from a vCPU thread) when the guest drains the receive buffer.
  void setRxSpaceCallback(std::function<void()> callback);

 private:
  uint8_t readRegister(uint64_t offset);
  void writeRegister(uint64_t offset, uint8_t value);
  uint8_t interruptId() const;
  void updateInterrupt();

  std::mutex mutex_;
  IrqLine& irq_;
  SerialOutput& output_;
  std::function<void()> rxSpaceCallback_;
  std::deque<uint8_t> rx_;
  uint8_t ier_ = 0;
  uint8_t lcr_ = 0;
  uint8_t mcr_ = 0;
  uint8_t scr_ = 0;
  uint8_t fcr_ = 0;
  uint8_t divisorLow_ = 0x0c;  // 9600 baud, as firmware leaves it.
  uint8_t divisorHigh_ = 0;
  uint8_t msr_ = 0;
  bool thrEmptyPending_ = false;  // THRE interrupt armed until IIR is read.
  bool irqLevel_ = false;
  bool wantedRxSpace_ = false;
};

}  // namespace cellvisor
