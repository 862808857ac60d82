// The bridge's vhost-user side against malformed and unsupported messages:
// each is refused with an error that names it, and a refused memory table
// maps nothing.
#include "tests/uml/bridge/vhost-user-device.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "base/unix-socket.h"

namespace cellvisor::uml {
namespace {

constexpr uint64_t VERSION_1 = 1ull << 32;

struct Link {
  Link() {
    auto [ours, theirs] = socketPair(SOCK_STREAM);
    driver = std::move(ours);
    device = std::make_unique<VhostUserDevice>(std::move(theirs), VERSION_1, "test");
  }
  // Sends one message as virtio_uml does: header, payload, descriptors.
  void send(uint32_t request, const std::vector<uint8_t>& payload, std::vector<int> fds = {},
            uint32_t flags = 1) {
    std::vector<uint8_t> bytes(12 + payload.size());
    uint32_t size = static_cast<uint32_t>(payload.size());
    std::memcpy(bytes.data(), &request, 4);
    std::memcpy(bytes.data() + 4, &flags, 4);
    std::memcpy(bytes.data() + 8, &size, 4);
    if (!payload.empty()) std::memcpy(bytes.data() + 12, payload.data(), payload.size());
    iovec io{bytes.data(), bytes.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(8 * sizeof(int))];
    msghdr message{};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    if (!fds.empty()) {
      message.msg_control = control;
      message.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
      cmsghdr* c = CMSG_FIRSTHDR(&message);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
      std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    }
    ASSERT_EQ(::sendmsg(driver.get(), &message, 0), static_cast<ssize_t>(bytes.size()));
  }
  std::string refusal() {
    try {
      device->handleMessage();
    } catch (const std::exception& error) {
      return error.what();
    }
    return "";
  }
  UniqueFd driver;
  std::unique_ptr<VhostUserDevice> device;
};

template <typename... Words>
std::vector<uint8_t> words(Words... values) {
  std::vector<uint8_t> bytes;
  for (uint64_t value : {static_cast<uint64_t>(values)...}) {
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(value >> (8 * i)));
  }
  return bytes;
}

// A vring state (two 32-bit words).
std::vector<uint8_t> state(uint32_t index, uint32_t number) {
  return words(uint64_t{index} | uint64_t{number} << 32);
}

UniqueFd memoryFile(uint64_t size) {
  UniqueFd fd(::memfd_create("uml-ram", MFD_CLOEXEC));
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
  return fd;
}

TEST(VhostUserDevice, AnswersFeaturesAndSetsUpAQueueInTheDriversMemory) {
  Link link;
  link.send(1, {});  // GET_FEATURES
  ASSERT_TRUE(link.device->handleMessage());
  uint8_t reply[20];
  ASSERT_EQ(::read(link.driver.get(), reply, sizeof(reply)), 20);
  uint64_t features;
  std::memcpy(&features, reply + 12, 8);
  EXPECT_EQ(features, VERSION_1 | 1ull << 30);  // And the protocol-features bit.

  UniqueFd ram = memoryFile(4 << 20);
  // One region: guest 1 MiB..4 MiB, user addresses the same, file offset 1 MiB.
  link.send(5, words(1, 3 << 20, 3 << 20, 1 << 20, 1 << 20), {ram.get()});
  ASSERT_TRUE(link.device->handleMessage());
  ASSERT_NE(link.device->memory(), nullptr);
  link.send(8, state(0, 256));
  ASSERT_TRUE(link.device->handleMessage());
  link.send(9, words(0, 0x100000, 0x102000, 0x101000, 0));  // index/flags, desc, used, avail, log
  ASSERT_TRUE(link.device->handleMessage());
  UniqueFd kick(::eventfd(0, EFD_CLOEXEC));
  link.send(12, words(0), {kick.get()});
  ASSERT_TRUE(link.device->handleMessage());
  EXPECT_NE(link.device->queue(0).ring, nullptr);
}

TEST(VhostUserDevice, RefusesMalformedAndUnsupportedMessagesByName) {
  {
    Link link;
    link.send(1, {}, {}, 2);  // Version 2.
    EXPECT_NE(link.refusal().find("bad header"), std::string::npos);
  }
  {
    Link link;
    link.send(1, std::vector<uint8_t>(5000));  // Past the largest payload.
    EXPECT_NE(link.refusal().find("bad header"), std::string::npos);
  }
  {
    Link link;
    link.send(22, {});  // IOTLB_MSG
    EXPECT_EQ(link.refusal(), "vhost-user: request 22 not supported");
  }
  {
    Link link;
    link.send(8, state(0, 3));
    EXPECT_EQ(link.refusal(), "vhost-user: queue size 3");
  }
  {
    Link link;
    link.send(8, state(7, 256));
    EXPECT_EQ(link.refusal(), "vhost-user: queue 7");
  }
  {
    Link link;
    link.send(8, {1, 2});
    EXPECT_EQ(link.refusal(), "vhost-user: short SET_VRING_NUM");
  }
  {
    Link link;
    link.send(12, words(0));  // A kick fd promised, none passed.
    EXPECT_EQ(link.refusal(), "vhost-user: vring message without its fd");
  }
}

TEST(VhostUserDevice, RefusesAMemoryTableItCannotHonourAndMapsNothing) {
  UniqueFd one = memoryFile(2 << 20);
  UniqueFd other = memoryFile(2 << 20);
  {
    Link link;  // Two regions in two files.
    link.send(5, words(2, 0, 1 << 20, 0, 0, 1 << 20, 1 << 20, 1 << 20, 0), {one.get(), other.get()});
    EXPECT_EQ(link.refusal(), "vhost-user: memory regions in more than one file (not supported)");
    EXPECT_EQ(link.device->memory(), nullptr);
  }
  {
    Link link;  // One region, no fd.
    link.send(5, words(1, 0, 1 << 20, 0, 0));
    EXPECT_EQ(link.refusal(), "vhost-user: SET_MEM_TABLE with 1 regions and 0 fds");
    EXPECT_EQ(link.device->memory(), nullptr);
  }
  {
    Link link;  // A ring outside the table.
    link.send(5, words(1, 0, 1 << 20, 0, 0), {one.get()});
    ASSERT_TRUE(link.device->handleMessage());
    link.send(8, state(0, 256));
    ASSERT_TRUE(link.device->handleMessage());
    UniqueFd kick(::eventfd(0, EFD_CLOEXEC));
    link.send(12, words(0), {kick.get()});
    ASSERT_TRUE(link.device->handleMessage());
    link.send(9, words(0, 0x4000'0000, 0x2000, 0x1000, 0));
    EXPECT_EQ(link.refusal(), "vhost-user: a ring outside the memory table");
    EXPECT_EQ(link.device->queue(0).ring, nullptr);
  }
}

TEST(VhostUserDevice, ADriverThatHangsUpEndsTheLink) {
  Link link;
  link.driver.reset();
  EXPECT_FALSE(link.device->handleMessage());
}

}  // namespace
}  // namespace cellvisor::uml
