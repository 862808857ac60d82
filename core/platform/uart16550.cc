#include "core/platform/uart16550.h"

namespace cellvisor {
namespace {

enum Register : uint64_t {
  DATA = 0,  // RBR/THR, or DLL with DLAB.
  IER = 1,   // or DLM with DLAB.
  IIR_FCR = 2,
  LCR = 3,
  MCR = 4,
  LSR = 5,
  MSR = 6,
  SCR = 7,
};

constexpr uint8_t IER_RX_AVAILABLE = 0x01;
constexpr uint8_t IER_THR_EMPTY = 0x02;
constexpr uint8_t IER_LINE_STATUS = 0x04;
constexpr uint8_t IER_MODEM_STATUS = 0x08;
constexpr uint8_t IIR_NONE = 0x01;
constexpr uint8_t IIR_THR_EMPTY = 0x02;
constexpr uint8_t IIR_RX_AVAILABLE = 0x04;
constexpr uint8_t IIR_FIFO_ENABLED = 0xc0;
constexpr uint8_t FCR_ENABLE = 0x01;
constexpr uint8_t FCR_CLEAR_RX = 0x02;
constexpr uint8_t LCR_DLAB = 0x80;
constexpr uint8_t MCR_DTR = 0x01;
constexpr uint8_t MCR_RTS = 0x02;
constexpr uint8_t MCR_OUT1 = 0x04;
constexpr uint8_t MCR_OUT2 = 0x08;
constexpr uint8_t MCR_LOOPBACK = 0x10;
constexpr uint8_t LSR_DATA_READY = 0x01;
constexpr uint8_t LSR_THR_EMPTY = 0x20;
constexpr uint8_t LSR_TX_EMPTY = 0x40;
constexpr uint8_t MSR_CTS = 0x10;
constexpr uint8_t MSR_DSR = 0x20;
constexpr uint8_t MSR_DCD = 0x80;

}  // namespace

void Uart16550::read(uint64_t offset, std::span<uint8_t> data) {
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex_);
    bool wasFull = rx_.size() >= RX_BUFFER;
    for (size_t i = 0; i < data.size(); ++i) data[i] = readRegister(offset + i);
    if (wantedRxSpace_ && (wasFull || rx_.empty())) {
      wantedRxSpace_ = false;
      notify = rxSpaceCallback_;
    }
    updateInterrupt();
  }
  // Outside the lock: the backend may call receive() from the callback.
  if (notify) notify();
}

void Uart16550::write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  for (size_t i = 0; i < data.size(); ++i) writeRegister(offset + i, data[i]);
  updateInterrupt();
}

size_t Uart16550::receive(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  size_t accepted = 0;
  // Loopback mode disconnects the receiver from the line.
  if (mcr_ & MCR_LOOPBACK) return bytes.size();
  while (accepted < bytes.size() && rx_.size() < RX_BUFFER) rx_.push_back(bytes[accepted++]);
  if (accepted < bytes.size()) wantedRxSpace_ = true;
  updateInterrupt();
  return accepted;
}

void Uart16550::setRxSpaceCallback(std::function<void()> callback) {
  std::lock_guard lock(mutex_);
  rxSpaceCallback_ = std::move(callback);
}

uint8_t Uart16550::readRegister(uint64_t offset) {
  bool dlab = lcr_ & LCR_DLAB;
  switch (offset) {
    case DATA: {
      if (dlab) return divisorLow_;
      if (rx_.empty()) return 0;
      uint8_t byte = rx_.front();
      rx_.pop_front();
      return byte;
    }
    case IER:
      return dlab ? divisorHigh_ : ier_;
    case IIR_FCR: {
      uint8_t id = interruptId();
      // Reading IIR while it reports THRE acknowledges that interrupt.
      if (id == IIR_THR_EMPTY) thrEmptyPending_ = false;
      return id | ((fcr_ & FCR_ENABLE) ? IIR_FIFO_ENABLED : 0);
    }
    case LCR:
      return lcr_;
    case MCR:
      return mcr_;
    case LSR:
      return static_cast<uint8_t>(LSR_THR_EMPTY | LSR_TX_EMPTY | (rx_.empty() ? 0 : LSR_DATA_READY));
    case MSR: {
      if (mcr_ & MCR_LOOPBACK) {
        // Loopback wires DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
        return static_cast<uint8_t>(((mcr_ & MCR_DTR) ? MSR_DSR : 0) | ((mcr_ & MCR_RTS) ? MSR_CTS : 0) |
                                    ((mcr_ & MCR_OUT1) ? 0x40 : 0) | ((mcr_ & MCR_OUT2) ? MSR_DCD : 0));
      }
      uint8_t value = msr_ | MSR_CTS | MSR_DSR | MSR_DCD;
      msr_ = 0;  // Delta bits clear on read.
      return value;
    }
    case SCR:
      return scr_;
    default:
      return 0xff;
  }
}

void Uart16550::writeRegister(uint64_t offset, uint8_t value) {
  bool dlab = lcr_ & LCR_DLAB;
  switch (offset) {
    case DATA:
      if (dlab) {
        divisorLow_ = value;
      } else if (mcr_ & MCR_LOOPBACK) {
        if (rx_.size() < RX_BUFFER) rx_.push_back(value);
        thrEmptyPending_ = true;
      } else {
        output_.writeOutput({&value, 1});
        thrEmptyPending_ = true;
      }
      break;
    case IER:
      if (dlab) {
        divisorHigh_ = value;
      } else {
        // Enabling THRE while the holding register is empty raises it at once.
        if ((value & IER_THR_EMPTY) && !(ier_ & IER_THR_EMPTY)) thrEmptyPending_ = true;
        ier_ = value & (IER_RX_AVAILABLE | IER_THR_EMPTY | IER_LINE_STATUS | IER_MODEM_STATUS);
      }
      break;
    case IIR_FCR:
      fcr_ = value & 0xc9;
      if (value & FCR_CLEAR_RX) rx_.clear();
      break;
    case LCR:
      lcr_ = value;
      break;
    case MCR:
      mcr_ = value & 0x1f;
      break;
    case SCR:
      scr_ = value;
      break;
    default:
      break;  // LSR and MSR are read-only.
  }
}

uint8_t Uart16550::interruptId() const {
  if ((ier_ & IER_RX_AVAILABLE) && !rx_.empty()) return IIR_RX_AVAILABLE;
  if ((ier_ & IER_THR_EMPTY) && thrEmptyPending_) return IIR_THR_EMPTY;
  return IIR_NONE;
}

void Uart16550::updateInterrupt() {
  // OUT2 gates the interrupt onto the ISA line on PC-compatible boards.
  bool level = interruptId() != IIR_NONE && (mcr_ & MCR_OUT2);
  if (level != irqLevel_) {
    irqLevel_ = level;
    irq_.set(level);
  }
}

}  // namespace cellvisor
