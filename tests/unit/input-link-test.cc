// The core's end of a display's input link facing what a display server
// may write: real events, bytes that are no message, a flood, a corrupt
// ring. The core takes the events, skips the junk, ends the link on a
// corrupt ring, and never lets the flood keep its I/O loop.
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <vector>

#include "base/mapping.h"
#include "base/unique-fd.h"
#include "core/devices/input-link-reader.h"
#include "core/platform/i8042.h"
#include "device.capnp.h"
#include "host/device-resources.h"
#include "proto/bootstrap-fds.h"
#include "proto/input-segment.h"
#include "tests/unit/fakes.h"

namespace cellvisor {
namespace {

class InputLink : public ::testing::Test {
 protected:
  InputLink() : link(InputSegment::create()) {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC | O_NONBLOCK) == 0) {
      doorbell = UniqueFd(ends[0]);
      bell = UniqueFd(ends[1]);
    }
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
  UniqueFd doorbell;  // The pipe's read end (the core's), and its write end.
  UniqueFd bell;
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

// A full ring of key presses and releases against a 16-byte keyboard: the
// keys wait in the ring while the guest has not read, and every one of
// them reaches the guest, in order (a lost key-up would leave a key stuck).
TEST_F(InputLink, AFullRingOfKeysReachesASlowGuestWhole) {
  start();
  size_t written = 0;
  while (key(0x1e, written % 2 == 0)) ++written;
  ASSERT_GT(written, 100u);
  std::vector<uint8_t> seen;
  for (int turn = 0; turn < 1000 && reader->eventsRead() < written; ++turn) {
    reader->drain();
    auto bytes = guestReads();  // The guest reads a little each turn.
    seen.insert(seen.end(), bytes.begin(), bytes.end());
  }
  auto rest = guestReads();
  seen.insert(seen.end(), rest.begin(), rest.end());
  EXPECT_EQ(reader->eventsRead(), written);
  ASSERT_EQ(seen.size(), written) << "a byte per key event (set 1: make 1e, break 9e)";
  for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], i % 2 == 0 ? 0x1e : 0x9e) << i;
}

// A guest that never reads its keyboard: keys are given up after a while
// and the rest of the link goes on (a client arriving is still heard).
TEST_F(InputLink, AGuestThatNeverReadsDoesNotStopTheLink) {
  start();
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(key(0x1e, i % 2 == 0));
  capnp::MallocMessageBuilder builder;
  builder.initRoot<proto::InputEvent>().setClientConnected();
  auto words = capnp::messageToFlatArray(builder);
  ASSERT_TRUE(write({reinterpret_cast<const uint8_t*>(words.begin()), words.size() * sizeof(capnp::word)}));
  reader->drain();
  EXPECT_TRUE(reader->keyWaiting());
  EXPECT_EQ(clients, 0) << "in order: behind the waiting key";
  for (int turn = 0; turn < 200 && clients == 0; ++turn) uv_run(&loop, UV_RUN_ONCE);
  EXPECT_EQ(clients, 1);
  EXPECT_FALSE(reader->keyWaiting());
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

namespace cellvisor {
namespace {

// The fds a bootstrap message for `resources` carries to `recipient`,
// sorted by role (duplicates: the resources keep theirs).
BootstrapFds bootstrapFor(const DeviceResources& resources, DeviceResources::Recipient recipient,
                          GuestMemory& memory) {
  capnp::MallocMessageBuilder builder;
  auto bootstrap = builder.initRoot<proto::Bootstrap>();
  std::vector<UniqueFd> fds;
  for (int fd : resources.describe(bootstrap, memory.memfd(), memory.regions(), {}, recipient))
    fds.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  return sortBootstrapFds(bootstrap.asReader(), fds);
}

ino_t inode(int fd) {
  struct stat st {};
  ::fstat(fd, &st);
  return st.st_ino;
}

// A display and a tablet joined by linkInputDevices: the display's server
// gets its core link's write end and the tablet link's write end, the
// tablet's server that link's read end, and the core only the display's
// link (a tablet's link is none of its business).
TEST(InputLinks, ADisplaysPointerLinkEndsAtTheTabletsServer) {
  GuestMemory memory(2 << 20);
  DeviceResources display("fbuf-29.0", 0, 0, 0, InputRole::SOURCE);
  DeviceResources tablet("xhci-30.0", 0, 1, 0, InputRole::POINTER_SINK);
  DeviceResources disk("virtio-blk-4.0", 1, 2);
  linkInputDevices({&disk, &tablet, &display});

  BootstrapFds displayServer = bootstrapFor(display, DeviceResources::Recipient::SERVER, memory);
  BootstrapFds tabletServer = bootstrapFor(tablet, DeviceResources::Recipient::SERVER, memory);
  BootstrapFds displayCore = bootstrapFor(display, DeviceResources::Recipient::CORE, memory);
  BootstrapFds tabletCore = bootstrapFor(tablet, DeviceResources::Recipient::CORE, memory);
  BootstrapFds diskServer = bootstrapFor(disk, DeviceResources::Recipient::SERVER, memory);
  ASSERT_TRUE(displayServer.pointerSegment && tabletServer.inputSegment);
  EXPECT_EQ(inode(displayServer.pointerSegment.get()), inode(tabletServer.inputSegment.get()));
  EXPECT_NE(inode(displayServer.inputSegment.get()), inode(tabletServer.inputSegment.get()));
  EXPECT_EQ(inode(displayServer.inputSegment.get()), inode(displayCore.inputSegment.get()));
  EXPECT_FALSE(tabletCore.inputSegment) << "the core reads no tablet's link";
  EXPECT_FALSE(tabletServer.pointerSegment);
  EXPECT_FALSE(diskServer.inputSegment || diskServer.pointerSegment);
  EXPECT_EQ(tablet.coreInputLink(), nullptr);
  EXPECT_NE(display.coreInputLink(), nullptr);

  // One pipe: the display's server rings, the tablet's server hears it;
  // the write ends are not handed to readers.
  const char ring = 1;
  ASSERT_EQ(::write(displayServer.pointerDoorbell.get(), &ring, 1), 1);
  char heard = 0;
  EXPECT_EQ(::read(tabletServer.inputDoorbell.get(), &heard, 1), 1);
  EXPECT_EQ(::write(tabletServer.inputDoorbell.get(), &ring, 1), -1);
  EXPECT_EQ(::write(displayCore.inputDoorbell.get(), &ring, 1), -1);
}

}  // namespace
}  // namespace cellvisor

namespace cellvisor {
namespace {

// A hostile server clears O_NONBLOCK on every doorbell end it was handed
// and never reads: the core's ends are other open files, so its rings never
// block (a full pipe just holds enough wake-ups) and its waits return.
TEST(ChannelDoorbells, AServerCannotMakeTheCoresEndsBlock) {
  GuestMemory memory(2 << 20);
  DeviceResources resources("virtio-blk-4.0", 1, 2);
  BootstrapFds server = bootstrapFor(resources, DeviceResources::Recipient::SERVER, memory);
  for (int fd : {server.requestDoorbell.get(), server.replyDoorbell.get()})
    ASSERT_EQ(::fcntl(fd, F_SETFL, 0), 0);
  for (int ring = 0; ring < 100'000; ++ring)
    ringDoorbellPipe(resources.requestDoorbell());  // Past a pipe's 64 KiB.
  emptyDoorbellPipe(resources.replyDoorbell());     // Nothing there: returns at once.
  char byte = 0;
  EXPECT_EQ(::read(resources.replyDoorbell(), &byte, 1), -1);
  EXPECT_EQ(errno, EAGAIN);
  // The server's ends are the other ends of the same pipes.
  ringDoorbellPipe(server.replyDoorbell.get());
  EXPECT_EQ(::read(resources.replyDoorbell(), &byte, 1), 1);
  EXPECT_EQ(::read(server.requestDoorbell.get(), &byte, 1), 1);
  // Its end of the reply pipe is the write end, never the core's read end:
  // it cannot take the core's wake-ups.
  EXPECT_EQ(inode(server.replyDoorbell.get()), inode(resources.replyDoorbell()));
  EXPECT_EQ(::write(resources.replyDoorbell(), &byte, 1), -1);
}

}  // namespace
}  // namespace cellvisor

namespace cellvisor {
namespace {

// What vmmd hands a core: the core's ends of the channel's doorbells and of
// a display's input link, which meet the server's ends of the same pipes.
TEST(ChannelDoorbells, ACoreAdoptsItsEndsFromTheSupervisor) {
  GuestMemory memory(2 << 20);
  DeviceResources made("fbuf-29.0", 0, 0, 0, InputRole::SOURCE);
  int sockets[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets), 0);
  UniqueFd supervisor(sockets[0]), core(sockets[1]);
  sendDeviceResources(supervisor.get(), made, memory.memfd(), memory.regions());
  AdoptedDevice adopted = receiveDeviceResources(core.get());
  ASSERT_TRUE(adopted.resources);
  BootstrapFds server = bootstrapFor(made, DeviceResources::Recipient::SERVER, memory);
  char byte = 0;
  ringDoorbellPipe(adopted.resources->requestDoorbell());
  EXPECT_EQ(::read(server.requestDoorbell.get(), &byte, 1), 1);
  ringDoorbellPipe(server.replyDoorbell.get());
  EXPECT_EQ(::read(adopted.resources->replyDoorbell(), &byte, 1), 1);
  ringDoorbellPipe(server.inputDoorbell.get());
  EXPECT_EQ(::read(adopted.resources->coreInputDoorbell(), &byte, 1), 1);
  EXPECT_THROW(adopted.resources->serverRequestDoorbell(), std::logic_error)
      << "a core holds no server's end";
}

}  // namespace
}  // namespace cellvisor
