// The i8042 with its PS/2 keyboard and mouse, driven the way SeaBIOS's
// ps2port.c and Linux's i8042, atkbd and psmouse drivers drive them.
#include <gtest/gtest.h>

#include <vector>

#include "core/platform/i8042.h"
#include "core/platform/ps2-scancodes.h"
#include "tests/unit/fakes.h"

namespace cellvisor {
namespace {

using testing::readByte;
using testing::writeByte;

class Ps2 : public ::testing::Test {
 protected:
  uint8_t status() { return readByte(i8042.commandPort(), 0); }
  void command(uint8_t value) { writeByte(i8042.commandPort(), 0, value); }
  void data(uint8_t value) { writeByte(i8042, 0, value); }
  // Everything in the output buffer, as a driver polling OBF reads it.
  std::vector<uint8_t> drain() {
    std::vector<uint8_t> bytes;
    while (status() & 1) bytes.push_back(readByte(i8042, 0));
    return bytes;
  }
  std::vector<uint8_t> toKeyboard(uint8_t value) {
    data(value);
    return drain();
  }
  std::vector<uint8_t> toMouse(uint8_t value) {
    command(0xd4);
    data(value);
    return drain();
  }
  void writeCommandByte(uint8_t value) {
    command(0x60);
    data(value);
  }
  uint8_t readCommandByte() {
    command(0x20);
    auto bytes = drain();
    return bytes.size() == 1 ? bytes[0] : 0xee;
  }

  testing::RecordingControl control;
  testing::RecordingIrq keyboardIrq;
  testing::RecordingIrq mouseIrq;
  I8042 i8042{control, keyboardIrq, mouseIrq};
};

using Bytes = std::vector<uint8_t>;

TEST(Ps2Scancodes, TranslationAndItsInverseAgree) {
  for (unsigned set1 = 1; set1 < 0x80; ++set1) {
    uint8_t set2 = ps2::set2CodeOf(static_cast<uint8_t>(set1));
    if (set2 == 0) continue;
    EXPECT_EQ(ps2::translateToSet1(set2), set1) << std::hex << set1;
  }
  EXPECT_EQ(ps2::set2CodeOf(0x41), 0x83) << "F7";
  EXPECT_EQ(ps2::set2CodeOf(0x1c), 0x5a) << "Enter";
  EXPECT_EQ(ps2::set2CodeOf(0x10), 0x15) << "Q";
  EXPECT_EQ(ps2::translateToSet1(0xfa), 0xfa) << "replies above 0x84 pass";
}

// SeaBIOS's ps2_keyboard_setup, step by step.
TEST_F(Ps2, FirmwareBringsUpTheKeyboard) {
  command(0xad);
  command(0xa7);
  EXPECT_EQ(drain(), Bytes{});
  command(0xaa);
  EXPECT_EQ(drain(), Bytes{0x55});
  command(0xab);
  EXPECT_EQ(drain(), Bytes{0x00});
  writeCommandByte(0x30);  // Both ports off, no interrupts, untranslated.
  command(0xae);
  EXPECT_EQ(toKeyboard(0xff), (Bytes{0xfa, 0xaa}));
  EXPECT_EQ(toKeyboard(0xf5), Bytes{0xfa});
  EXPECT_EQ(toKeyboard(0xf0), Bytes{0xfa});
  EXPECT_EQ(toKeyboard(0x02), Bytes{0xfa});
  writeCommandByte(0x61);
  EXPECT_EQ(toKeyboard(0xf4), Bytes{0xfa});
  EXPECT_EQ(readCommandByte(), 0x61);
  EXPECT_EQ(keyboardIrq.level, false);
  EXPECT_TRUE(control.statuses.empty());
}

// Translated (XLATE on): set 1 comes out, break codes with the top bit.
TEST_F(Ps2, TranslatedKeysArriveAsSet1WithAnInterruptEach) {
  writeCommandByte(0x41);  // Translate, keyboard interrupt.
  int edges = keyboardIrq.changes;
  i8042.key(0x1e, true);  // A
  EXPECT_TRUE(keyboardIrq.level);
  EXPECT_EQ(status() & 0x21, 0x01) << "keyboard byte, not the mouse's";
  EXPECT_EQ(readByte(i8042, 0), 0x1e);
  EXPECT_FALSE(keyboardIrq.level);
  i8042.key(0x1e, false);
  EXPECT_EQ(drain(), Bytes{0x9e});
  i8042.key(ps2::KEY_EXTENDED | 0x48, true);  // Up
  i8042.key(ps2::KEY_EXTENDED | 0x48, false);
  EXPECT_EQ(drain(), (Bytes{0xe0, 0x48, 0xe0, 0xc8}));
  EXPECT_GE(keyboardIrq.changes - edges, 2 * 6) << "each byte is its own rising edge";
  i8042.key(ps2::KEY_PAUSE, true);
  i8042.key(ps2::KEY_PAUSE, false);
  EXPECT_EQ(drain(), (Bytes{0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5}));
  EXPECT_EQ(toKeyboard(0xf2), (Bytes{0xfa, 0xab, 0x41})) << "the ID translated, as on hardware";
}

// Linux with i8042.direct (translation off): raw set 2.
TEST_F(Ps2, UntranslatedKeysArriveAsSet2) {
  writeCommandByte(0x01);
  i8042.key(0x1e, true);
  i8042.key(0x1e, false);
  i8042.key(ps2::KEY_EXTENDED | 0x1d, true);  // Right Ctrl
  i8042.key(ps2::KEY_EXTENDED | 0x1d, false);
  EXPECT_EQ(drain(), (Bytes{0x1c, 0xf0, 0x1c, 0xe0, 0x14, 0xe0, 0xf0, 0x14}));
  EXPECT_EQ(toKeyboard(0xf2), (Bytes{0xfa, 0xab, 0x83}));
  EXPECT_EQ(toKeyboard(0xf0), Bytes{0xfa});
  EXPECT_EQ(toKeyboard(0x00), (Bytes{0xfa, 0x02}));
  // Set 1 chosen by the guest: set 1 bytes with translation off.
  toKeyboard(0xf0);
  toKeyboard(0x01);
  i8042.key(0x10, true);
  i8042.key(0x10, false);
  EXPECT_EQ(drain(), (Bytes{0x10, 0x90}));
}

TEST_F(Ps2, KeyboardCommandsAsAtkbdSendsThem) {
  writeCommandByte(0x41);
  EXPECT_EQ(toKeyboard(0xed), Bytes{0xfa});
  EXPECT_EQ(toKeyboard(0x04), Bytes{0xfa});
  EXPECT_EQ(i8042.keyboard().leds(), 4) << "Caps Lock";
  EXPECT_EQ(toKeyboard(0xf3), Bytes{0xfa});
  EXPECT_EQ(toKeyboard(0x00), Bytes{0xfa});
  EXPECT_EQ(toKeyboard(0xee), Bytes{0xee});
  EXPECT_EQ(toKeyboard(0xe8), Bytes{0xfe}) << "not a keyboard command";
  // Scanning off: keys are not reported.
  EXPECT_EQ(toKeyboard(0xf5), Bytes{0xfa});
  i8042.key(0x1e, true);
  EXPECT_EQ(drain(), Bytes{});
  EXPECT_EQ(toKeyboard(0xf4), Bytes{0xfa});
  i8042.key(0x1e, true);
  EXPECT_EQ(drain(), Bytes{0x1e});
}

TEST_F(Ps2, KeyboardBufferOverrunDropsWholeKeys) {
  writeCommandByte(0x41);
  for (int i = 0; i < 12; ++i) i8042.key(ps2::KEY_EXTENDED | 0x48, true);  // 2 bytes each
  auto bytes = drain();
  EXPECT_EQ(bytes.size(), 16u + 0u) << "16 bytes buffered: 8 whole keys (one sits in the output buffer)";
  for (size_t i = 0; i < bytes.size(); i += 2) EXPECT_EQ(bytes[i], 0xe0);
}

TEST_F(Ps2, KeyboardDisabledHoldsItsBytes) {
  writeCommandByte(0x51);  // Keyboard interface off.
  i8042.key(0x1e, true);
  EXPECT_EQ(drain(), Bytes{});
  command(0xae);
  EXPECT_EQ(drain(), Bytes{0x1e});
}

// Linux's i8042_check_aux and the MUX probe.
TEST_F(Ps2, AuxLoopbackRaisesIrq12) {
  writeCommandByte(0x47 & ~0x20);  // Translate, system, both interrupts, mouse port on.
  command(0xd3);
  data(0x5a);
  EXPECT_EQ(status() & 0x21, 0x21) << "the byte is the mouse's";
  EXPECT_TRUE(mouseIrq.level);
  EXPECT_FALSE(keyboardIrq.level);
  EXPECT_EQ(readByte(i8042, 0), 0x5a);
  EXPECT_FALSE(mouseIrq.level);
  command(0xa7);
  EXPECT_EQ(readCommandByte() & 0x20, 0x20);
  command(0xa8);
  EXPECT_EQ(readCommandByte() & 0x20, 0x00);
  for (uint8_t knock : {0xf0, 0x56, 0xa4}) {
    command(0xd3);
    data(knock);
    EXPECT_EQ(drain(), Bytes{knock}) << "no active multiplexing: the byte comes back unchanged";
  }
}

// psmouse: reset, ID, the IntelliMouse and Explorer knocks, then packets.
TEST_F(Ps2, MouseProbeAndPackets) {
  writeCommandByte(0x43);  // Both interrupts, translate, mouse port on.
  EXPECT_EQ(toMouse(0xff), (Bytes{0xfa, 0xaa, 0x00}));
  EXPECT_EQ(toMouse(0xf2), (Bytes{0xfa, 0x00}));
  auto rate = [&](uint8_t value) {
    EXPECT_EQ(toMouse(0xf3), Bytes{0xfa});
    EXPECT_EQ(toMouse(value), Bytes{0xfa});
  };
  rate(200), rate(100), rate(80);
  EXPECT_EQ(toMouse(0xf2), (Bytes{0xfa, 0x03}));
  rate(200), rate(200), rate(80);
  EXPECT_EQ(toMouse(0xf2), (Bytes{0xfa, 0x04}));
  EXPECT_EQ(toMouse(0xe1), Bytes{0xfe}) << "a vendor probe is refused at once";
  EXPECT_EQ(toMouse(0xe9), (Bytes{0xfa, 0x00, 0x02, 80}));
  // Not reporting yet: motion is not queued.
  i8042.pointer(0, 100, 100);
  EXPECT_EQ(drain(), Bytes{});
  EXPECT_EQ(toMouse(0xf4), Bytes{0xfa});
  i8042.pointer(0, 110, 95);
  EXPECT_TRUE(mouseIrq.level);
  EXPECT_EQ(drain(), (Bytes{0x08, 10, 5, 0})) << "right 10, up 5";
  i8042.pointer(Ps2Mouse::VNC_LEFT | Ps2Mouse::VNC_RIGHT, 110, 95);
  EXPECT_EQ(drain(), (Bytes{0x0b, 0, 0, 0})) << "left and right down, no motion";
  i8042.pointer(Ps2Mouse::VNC_WHEEL_UP, 110, 95);
  EXPECT_EQ(drain(), (Bytes{0x08, 0, 0, 0x0f})) << "buttons up, wheel up one";
  // A long move goes out in packets of at most 127 as the guest reads.
  i8042.pointer(0, 110 - 400, 95);
  auto bytes = drain();
  ASSERT_EQ(bytes.size() % 4, 0u);
  int moved = 0;
  for (size_t i = 0; i < bytes.size(); i += 4) {
    EXPECT_EQ(bytes[i] & 0x18, 0x18) << "always-one bit and X sign";
    moved += static_cast<int8_t>(bytes[i + 1]);
  }
  EXPECT_EQ(moved, -400);
}

// A guest that asks the controller over and over without reading (rep
// outsb of 0x20 to port 0x64) must not grow the core: its replies are
// bounded, and the controller still answers once the guest reads.
TEST_F(Ps2, UnreadControllerRepliesAreBounded) {
  for (int i = 0; i < 100000; ++i) command(0x20);
  auto bytes = drain();
  EXPECT_LE(bytes.size(), 17u) << "the output buffer and 16 queued replies";
  EXPECT_GT(bytes.size(), 0u);
  command(0xaa);
  EXPECT_EQ(drain(), Bytes{0x55});
  EXPECT_TRUE(control.statuses.empty());
}

TEST_F(Ps2, ResetPulsesAndOutputPort) {
  command(0xff);
  EXPECT_TRUE(control.statuses.empty()) << "0xff pulses nothing";
  command(0xd1);
  data(0x03);
  EXPECT_TRUE(control.statuses.empty());
  command(0xd1);
  data(0x02);
  EXPECT_EQ(control.statuses.size(), 1u) << "reset line dropped";
  command(0xfe);
  EXPECT_EQ(control.statuses.size(), 2u);
}

}  // namespace
}  // namespace cellvisor
