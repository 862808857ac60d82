// The core's end of a display's input link facing what a display server
// may write: real events, bytes that are no message, a flood, a corrupt
// ring. The core takes the events, skips the junk, ends the link on a
// corrupt ring, and never lets the flood keep its I/O loop.
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <uv.h>

#include <vector>

#include "base/mapping.h"
#include "base/unique-fd.h"
#include "core/devices/input-link-reader.h"
#include "core/platform/i8042.h"
#include "device.capnp.h"
#include "proto/input-segment.h"
#include "tests/unit/fakes.h"

namespace cellvisor {
namespace {

class InputLink : public ::testing::Test {
 protected:
  InputLink() : link(InputSegment::create(false)), doorbell(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    uv_loop_init(&loop);
  }
  ~InputLink() override {
    reader.reset();
    uv_run(&loop, UV_RUN_NOWAIT);  // The reader's handle closes.
    uv_loop_close(&loop);
  }
  void start() {
    reader = std::make_unique<InputLinkReader>(
        &loop, link, doorbell.get(), i8042, [this] { ++clients; }, "fbuf-test");
  }
  bool write(std::span<const uint8_t> bytes) { return writer.tryWrite(bytes); }
  bool key(uint16_t code, bool down) {
    capnp::MallocMessageBuilder builder;
    auto event = builder.initRoot<proto::InputEvent>().initKey();
    event.setCode(code);
    event.setDown(down);
    auto words = capnp::messageToFlatArray(builder);
    return write({reinterpret_cast<const uint8_t*>(words.begin()), words.size() * sizeof(capnp::word)});
  }
  std::vector<uint8_t> guestReads() {
    std::vector<uint8_t> bytes;
    while (testing::readByte(i8042.commandPort(), 0) & 1) bytes.push_back(testing::readByte(i8042, 0));
    return bytes;
  }

  uv_loop_t loop{};
  InputSegment link;
  UniqueFd doorbell;
  RingWriter writer = link.writer();
  testing::RecordingControl control;
  testing::RecordingIrq keyboardIrq, mouseIrq;
  I8042 i8042{control, keyboardIrq, mouseIrq};
  std::unique_ptr<InputLinkReader> reader;
  int clients = 0;
};

TEST_F(InputLink, EventsArriveAndJunkIsSkipped) {
  start();
  capnp::MallocMessageBuilder builder;
  builder.initRoot<proto::InputEvent>().setClientConnected();
  auto words = capnp::messageToFlatArray(builder);
  ASSERT_TRUE(write({reinterpret_cast<const uint8_t*>(words.begin()), words.size() * sizeof(capnp::word)}));
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0};
  ASSERT_TRUE(write(junk));
  ASSERT_TRUE(key(0x1e, true));
  ASSERT_TRUE(key(0x1e, false));
  ASSERT_TRUE(key(0x7777, true));  // No such key: the keyboard ignores it.
  reader->drain();
  EXPECT_EQ(clients, 1);
  EXPECT_EQ(guestReads(), (std::vector<uint8_t>{0x1e, 0x9e})) << "translated set 1, as firmware leaves it";
  EXPECT_EQ(reader->eventsRead(), 4u) << "the junk frame was not an event";
}

TEST_F(InputLink, AFullRingIsReadWithNothingLost) {
  start();
  size_t written = 0;
  while (key(0x1e, written % 2 == 0)) ++written;
  ASSERT_GT(written, 100u);
  reader->drain();
  EXPECT_EQ(reader->eventsRead(), written);
  // The keyboard kept what its 16 bytes hold (and the output buffer one):
  // the rest overran, as on a real keyboard, whole keys at a time.
  size_t seen = guestReads().size();
  EXPECT_GT(seen, 8u);
  EXPECT_LE(seen, Ps2Device::INPUT_BYTES + 1);
}

TEST_F(InputLink, ACorruptRingEndsTheLinkAndNothingElse) {
  start();
  ASSERT_TRUE(key(0x10, true));
  reader->drain();
  // The server lies about how much it wrote.
  Mapping shared = Mapping::map(link.fd(), sizeof(InputLinkLayout), PROT_READ | PROT_WRITE, MAP_SHARED);
  auto& head = shared.as<InputLinkLayout>()->indices.head;
  head.store(head.load() + (uint64_t{1} << 40));
  reader->drain();
  EXPECT_EQ(reader->eventsRead(), 1u);
  EXPECT_EQ(guestReads(), std::vector<uint8_t>{0x10});
  // The keyboard goes on for everyone else.
  i8042.key(0x11, true);
  EXPECT_EQ(guestReads(), std::vector<uint8_t>{0x11});
}

}  // namespace
}  // namespace cellvisor
