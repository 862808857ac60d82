// The 16550 as a driver sees it: transmit, receive with interrupts, FIFO
// limits with back-pressure, divisor latch, loopback.
#include <gtest/gtest.h>

#include "core/platform/uart16550.h"
#include "tests/unit/fakes.h"

namespace cellvisor {
namespace {

using testing::readByte;
using testing::writeByte;

struct UartTest : ::testing::Test {
  testing::RecordingIrq irq;
  testing::RecordingOutput output;
  Uart16550 uart{irq, output};
};

TEST_F(UartTest, TransmitsToBackend) {
  for (char c : std::string("hi\n")) writeByte(uart, 0, static_cast<uint8_t>(c));
  EXPECT_EQ(output.text, "hi\n");
  EXPECT_EQ(readByte(uart, 5) & 0x60, 0x60) << "THR and transmitter empty";
}

TEST_F(UartTest, ReceiveRaisesInterruptOnlyWhenEnabledAndGated) {
  uint8_t bytes[] = {'a', 'b'};
  EXPECT_EQ(uart.receive(bytes), 2u);
  EXPECT_FALSE(irq.level) << "IER off";
  writeByte(uart, 1, 0x01);  // IER: receive data available
  EXPECT_FALSE(irq.level) << "OUT2 gates the ISA line";
  writeByte(uart, 4, 0x08);  // MCR: OUT2
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(readByte(uart, 2) & 0x0f, 0x04) << "IIR: receive data";
  EXPECT_EQ(readByte(uart, 5) & 0x01, 0x01);
  EXPECT_EQ(readByte(uart, 0), 'a');
  EXPECT_EQ(readByte(uart, 0), 'b');
  EXPECT_FALSE(irq.level);
  EXPECT_EQ(readByte(uart, 5) & 0x01, 0x00);
  EXPECT_EQ(readByte(uart, 2) & 0x0f, 0x01) << "IIR: none pending";
}

TEST_F(UartTest, ThrEmptyInterruptIsAcknowledgedByReadingIir) {
  writeByte(uart, 4, 0x08);
  writeByte(uart, 1, 0x02);  // Enable THRE: fires at once, the register is empty.
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(readByte(uart, 2) & 0x0f, 0x02);
  EXPECT_FALSE(irq.level);
  writeByte(uart, 0, 'x');
  EXPECT_TRUE(irq.level) << "each transmitted byte re-arms THRE";
}

TEST_F(UartTest, FullBufferAppliesBackPressure) {
  std::vector<uint8_t> flood(Uart16550::RX_BUFFER + 100, 'z');
  int callbacks = 0;
  uart.setRxSpaceCallback([&] { ++callbacks; });
  EXPECT_EQ(uart.receive(flood), Uart16550::RX_BUFFER);
  EXPECT_EQ(callbacks, 0);
  readByte(uart, 0);
  EXPECT_EQ(callbacks, 1) << "the backend is told there is room again";
}

TEST_F(UartTest, DivisorLatchAndScratch) {
  writeByte(uart, 3, 0x80);
  writeByte(uart, 0, 0x01);
  writeByte(uart, 1, 0x02);
  EXPECT_EQ(readByte(uart, 0), 0x01);
  EXPECT_EQ(readByte(uart, 1), 0x02);
  writeByte(uart, 3, 0x03);
  EXPECT_EQ(readByte(uart, 1), 0x00) << "IER again once DLAB is clear";
  EXPECT_TRUE(output.text.empty()) << "divisor writes are not data";
  writeByte(uart, 7, 0xa5);
  EXPECT_EQ(readByte(uart, 7), 0xa5);
}

TEST_F(UartTest, LoopbackKeepsBytesOffTheLine) {
  writeByte(uart, 4, 0x10 | 0x02);
  writeByte(uart, 0, 'L');
  EXPECT_TRUE(output.text.empty());
  EXPECT_EQ(readByte(uart, 0), 'L');
  EXPECT_EQ(readByte(uart, 6) & 0x10, 0x10) << "RTS loops to CTS";
}

TEST_F(UartTest, FifoControlClearsReceiver) {
  uint8_t bytes[] = {'1', '2', '3'};
  uart.receive(bytes);
  writeByte(uart, 2, 0x03);
  EXPECT_EQ(readByte(uart, 5) & 0x01, 0);
  EXPECT_EQ(readByte(uart, 2) & 0xc0, 0xc0) << "FIFOs enabled";
}

}  // namespace
}  // namespace cellvisor
