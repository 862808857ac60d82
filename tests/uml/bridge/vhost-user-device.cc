#include "tests/uml/bridge/vhost-user-device.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "proto/fd-passing.h"

namespace cellvisor::uml {

namespace {

// vhost-user's requests (the subset virtio_uml sends without protocol
// features) and header flags.
enum Request : uint32_t {
  GET_FEATURES = 1,
  SET_FEATURES = 2,
  SET_OWNER = 3,
  RESET_OWNER = 4,
  SET_MEM_TABLE = 5,
  SET_VRING_NUM = 8,
  SET_VRING_ADDR = 9,
  SET_VRING_BASE = 10,
  GET_VRING_BASE = 11,
  SET_VRING_KICK = 12,
  SET_VRING_CALL = 13,
  SET_VRING_ERR = 14,
  GET_PROTOCOL_FEATURES = 15,
  SET_PROTOCOL_FEATURES = 16,
  SET_VRING_ENABLE = 18,
  SET_SLAVE_REQ_FD = 21,
};
constexpr uint64_t F_PROTOCOL_FEATURES = 1ull << 30;
// The one protocol feature offered: the back channel. virtio_uml takes its
// interrupt number from setting that channel up; without it, it would share
// interrupt 0 with the timer and fail to probe.
constexpr uint64_t PROTOCOL_F_SLAVE_REQ = 1ull << 5;
constexpr uint32_t VERSION = 1;
constexpr uint32_t FLAG_REPLY = 1u << 2;
constexpr uint32_t FLAG_NEED_REPLY = 1u << 3;
// A vring fd message's payload: the index, and this bit when no fd comes.
constexpr uint64_t VRING_NO_FD = 1u << 8;
constexpr uint32_t MAX_PAYLOAD = 4096;

struct Header {
  uint32_t request;
  uint32_t flags;
  uint32_t size;
} __attribute__((packed));

struct VringState {
  uint32_t index;
  uint32_t num;
} __attribute__((packed));

struct VringAddress {
  uint32_t index;
  uint32_t flags;
  uint64_t descriptors;
  uint64_t used;
  uint64_t avail;
  uint64_t log;
} __attribute__((packed));

struct MemoryRegion {
  uint64_t guestPhysical;
  uint64_t size;
  uint64_t userAddress;
  uint64_t mmapOffset;
} __attribute__((packed));

// Reads exactly `length` bytes, collecting any descriptors that come along.
bool receiveAll(int socket, void* buffer, size_t length, std::vector<UniqueFd>& fds) {
  auto* bytes = static_cast<uint8_t*>(buffer);
  while (length > 0) {
    iovec io{bytes, length};
    alignas(cmsghdr) char control[CMSG_SPACE(8 * sizeof(int))];
    msghdr message{};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    ssize_t got = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw std::system_error(errno, std::generic_category(), "vhost-user: recvmsg");
    adoptPassedFds(message, fds);
    if (got == 0) return false;
    bytes += got;
    length -= static_cast<size_t>(got);
  }
  return true;
}

template <typename T>
T payloadAs(const std::vector<uint8_t>& payload, const char* what) {
  if (payload.size() < sizeof(T)) throw std::runtime_error(std::string("vhost-user: short ") + what);
  T value;
  std::memcpy(&value, payload.data(), sizeof(T));
  return value;
}

}  // namespace

VhostUserDevice::VhostUserDevice(UniqueFd connection, uint64_t features, std::string name)
    : connection_(std::move(connection)), features_(features), name_(std::move(name)) {}

bool VhostUserDevice::handleMessage() {
  std::vector<UniqueFd> fds;
  Header header{};
  if (!receiveAll(connection_.get(), &header, sizeof(header), fds)) return false;
  if ((header.flags & 3) != VERSION || header.size > MAX_PAYLOAD) {
    throw std::runtime_error("vhost-user: bad header (flags " + std::to_string(header.flags) + ", size " +
                             std::to_string(header.size) + ")");
  }
  std::vector<uint8_t> payload(header.size);
  if (header.size > 0 && !receiveAll(connection_.get(), payload.data(), payload.size(), fds)) return false;

  auto queueIndex = [&](uint32_t index) {
    if (index >= MAX_QUEUES) throw std::runtime_error("vhost-user: queue " + std::to_string(index));
    return static_cast<size_t>(index);
  };
  bool replied = false;
  switch (header.request) {
    case GET_FEATURES: {
      uint64_t offered = features_ | F_PROTOCOL_FEATURES;
      reply(header.request, &offered, sizeof(offered));
      replied = true;
      break;
    }
    case GET_PROTOCOL_FEATURES: {
      uint64_t offered = PROTOCOL_F_SLAVE_REQ;
      reply(header.request, &offered, sizeof(offered));
      replied = true;
      break;
    }
    case SET_PROTOCOL_FEATURES:
      break;
    case SET_SLAVE_REQ_FD:
      // Kept open and never written: this device has no configuration
      // space to announce changes of.
      if (fds.empty()) throw std::runtime_error("vhost-user: SET_SLAVE_REQ_FD without its fd");
      backChannel_ = std::move(fds.front());
      break;
    case SET_FEATURES:
    case SET_OWNER:
    case RESET_OWNER:
    case SET_VRING_ENABLE:
      break;
    case SET_MEM_TABLE:
      setMemTable(payload.data(), header.size, fds);
      break;
    case SET_VRING_NUM: {
      auto state = payloadAs<VringState>(payload, "SET_VRING_NUM");
      Queue& queue = queues_[queueIndex(state.index)];
      if (state.num == 0 || state.num > 32768 || (state.num & (state.num - 1)) != 0) {
        throw std::runtime_error("vhost-user: queue size " + std::to_string(state.num));
      }
      queue.layout.size = static_cast<uint16_t>(state.num);
      queue.ring.reset();
      break;
    }
    case SET_VRING_BASE: {
      auto state = payloadAs<VringState>(payload, "SET_VRING_BASE");
      Queue& queue = queues_[queueIndex(state.index)];
      queue.position = {static_cast<uint16_t>(state.num), static_cast<uint16_t>(state.num),
                        static_cast<uint16_t>(state.num), 0};
      break;
    }
    case GET_VRING_BASE: {
      auto state = payloadAs<VringState>(payload, "GET_VRING_BASE");
      Queue& queue = queues_[queueIndex(state.index)];
      // The driver stops the queue: report where the device got to.
      VringState answer{state.index, queue.position.lastAvail};
      queue.ring.reset();
      queue.kick.reset();
      reply(header.request, &answer, sizeof(answer));
      replied = true;
      break;
    }
    case SET_VRING_ADDR: {
      auto address = payloadAs<VringAddress>(payload, "SET_VRING_ADDR");
      size_t index = queueIndex(address.index);
      userRings_[index] = {address.descriptors, address.used, address.avail};
      queues_[index].ring.reset();
      startIfReady(index);
      break;
    }
    case SET_VRING_KICK:
    case SET_VRING_CALL:
    case SET_VRING_ERR: {
      auto value = payloadAs<uint64_t>(payload, "vring fd");
      size_t index = queueIndex(static_cast<uint32_t>(value & 0xff));
      UniqueFd fd;
      if ((value & VRING_NO_FD) == 0) {
        if (fds.empty()) throw std::runtime_error("vhost-user: vring message without its fd");
        fd = std::move(fds.front());
      }
      if (header.request == SET_VRING_KICK) {
        queues_[index].kick = std::move(fd);
        startIfReady(index);
      } else if (header.request == SET_VRING_CALL) {
        queues_[index].call = std::move(fd);
      }
      break;
    }
    default:
      throw std::runtime_error("vhost-user: request " + std::to_string(header.request) + " not supported");
  }
  if ((header.flags & FLAG_NEED_REPLY) != 0 && !replied) {
    uint64_t status = 0;
    reply(header.request, &status, sizeof(status));
  }
  return true;
}

void VhostUserDevice::setMemTable(const uint8_t* payload, uint32_t size, std::vector<UniqueFd>& fds) {
  uint32_t count = 0;
  if (size < 8) throw std::runtime_error("vhost-user: short SET_MEM_TABLE");
  std::memcpy(&count, payload, sizeof(count));
  if (count == 0 || count > 8 || size < 8 + count * sizeof(MemoryRegion) || fds.size() != count) {
    throw std::runtime_error("vhost-user: SET_MEM_TABLE with " + std::to_string(count) + " regions and " +
                             std::to_string(fds.size()) + " fds");
  }
  if (memory_) throw std::runtime_error("vhost-user: the memory table changed (not supported)");
  // virtio_uml maps one file: every region must come from the same one, as
  // a GuestMemory is one file with regions in it.
  struct stat first {};
  std::vector<RamRegion> ram;
  for (uint32_t i = 0; i < count; ++i) {
    MemoryRegion region;
    std::memcpy(&region, payload + 8 + i * sizeof(MemoryRegion), sizeof(region));
    struct stat st {};
    if (::fstat(fds[i].get(), &st) != 0) throw std::system_error(errno, std::generic_category(), "fstat");
    if (i == 0) first = st;
    if (st.st_dev != first.st_dev || st.st_ino != first.st_ino) {
      throw std::runtime_error("vhost-user: memory regions in more than one file (not supported)");
    }
    ram.push_back({region.guestPhysical, region.size, region.mmapOffset});
    regions_.push_back({region.guestPhysical, region.size, region.userAddress});
  }
  memory_ = std::make_unique<GuestMemory>(std::move(fds.front()), std::move(ram));
  if (onMemory) onMemory(*memory_);
  for (size_t index = 0; index < MAX_QUEUES; ++index) startIfReady(index);
}

std::optional<uint64_t> VhostUserDevice::toGuestPhysical(uint64_t userAddress) const {
  for (const auto& region : regions_) {
    if (userAddress >= region.userAddress && userAddress - region.userAddress < region.size) {
      return region.guestPhysical + (userAddress - region.userAddress);
    }
  }
  return std::nullopt;
}

void VhostUserDevice::startIfReady(size_t index) {
  Queue& queue = queues_[index];
  if (queue.ring || !memory_ || queue.layout.size == 0 || !queue.kick || userRings_[index][0] == 0) return;
  auto descriptors = toGuestPhysical(userRings_[index][0]);
  auto used = toGuestPhysical(userRings_[index][1]);
  auto avail = toGuestPhysical(userRings_[index][2]);
  if (!descriptors || !used || !avail)
    throw std::runtime_error("vhost-user: a ring outside the memory table");
  queue.layout.descriptors = *descriptors;
  queue.layout.deviceArea = *used;
  queue.layout.driverArea = *avail;
  queue.ring = std::make_unique<SplitVirtqueue>(*memory_, queue.layout, queue.position, false, false);
}

void VhostUserDevice::notify(size_t index) {
  const Queue& queue = queues_.at(index);
  if (!queue.call) return;
  uint64_t one = 1;
  // A pipe (virtio_uml's choice): a full one already holds a wake-up.
  [[maybe_unused]] ssize_t written = ::write(queue.call.get(), &one, sizeof(one));
}

void VhostUserDevice::drainKick(size_t index) {
  const Queue& queue = queues_.at(index);
  if (!queue.kick) return;
  uint64_t count;
  [[maybe_unused]] ssize_t got = ::read(queue.kick.get(), &count, sizeof(count));
}

void VhostUserDevice::reply(uint32_t request, const void* payload, uint32_t size) {
  std::vector<uint8_t> message(sizeof(Header) + size);
  Header header{request, VERSION | FLAG_REPLY, size};
  std::memcpy(message.data(), &header, sizeof(header));
  std::memcpy(message.data() + sizeof(header), payload, size);
  size_t sent = 0;
  while (sent < message.size()) {
    ssize_t n = ::send(connection_.get(), message.data() + sent, message.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "vhost-user: send");
    sent += static_cast<size_t>(n);
  }
}

}  // namespace cellvisor::uml
