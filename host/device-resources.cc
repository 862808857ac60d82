#include "host/device-resources.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "base/sealed-memfd.h"
#include "base/system-error.h"

namespace cellvisor {
namespace {

UniqueFd makeEventFd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) throwSystemError("eventfd");
  return fd;
}

std::vector<UniqueFd> makeEventFds(uint16_t count) {
  std::vector<UniqueFd> fds;
  for (uint16_t i = 0; i < count; ++i) fds.push_back(makeEventFd());
  return fds;
}

// The state segment is shared with the server (and the supervisor): read
// its words as the atomics they are.
uint32_t loadShared(uint32_t& word) {
  return std::atomic_ref<uint32_t>(word).load(std::memory_order_acquire);
}

}  // namespace

std::shared_ptr<InputLink> InputLink::create() {
  DoorbellPipe pipe = DoorbellPipe::create();
  return std::make_shared<InputLink>(
      InputLink{InputSegment::create(), std::move(pipe.readEnd), std::move(pipe.writeEnd)});
}

int DeviceResources::serverRequestDoorbell() const {
  if (!requestWait_) throw std::logic_error("these resources hold no server's request doorbell");
  return requestWait_.get();
}

int DeviceResources::serverReplyDoorbell() const {
  if (!replyRing_) throw std::logic_error("these resources hold no server's reply doorbell");
  return replyRing_.get();
}

DeviceResources::DeviceResources(std::string deviceName, uint16_t queues, uint16_t vectors,
                                 uint64_t barMemoryBytes, InputRole input)
    : deviceName_(std::move(deviceName)),
      rings_(RingSegment::create()),
      state_(StateSegment::create()),

      queueDoorbells_(makeEventFds(queues)),
      interrupts_(makeEventFds(vectors)),
      role_(input) {
  DoorbellPipe request = DoorbellPipe::create();
  DoorbellPipe reply = DoorbellPipe::create();
  requestRing_ = std::move(request.writeEnd);
  requestWait_ = std::move(request.readEnd);
  replyRing_ = std::move(reply.writeEnd);
  replyWait_ = std::move(reply.readEnd);
  if (input != InputRole::NONE) input_ = InputLink::create();
  serverReadsInput_ = input == InputRole::POINTER_SINK;
  if (barMemoryBytes == 0) return;
  // Sealed at its size: the core maps it into the guest and the server maps
  // it too; neither may shrink it under the other.
  barMemory_ = createSealedMemfd("bar-memory", barMemoryBytes);
}

DeviceResources::DeviceResources(std::string deviceName, BootstrapFds& fds)
    : deviceName_(std::move(deviceName)),
      rings_(RingSegment::open(std::move(fds.rings))),
      state_(StateSegment::open(std::move(fds.state))),
      requestRing_(std::move(fds.requestDoorbell)),
      replyWait_(std::move(fds.replyDoorbell)),
      queueDoorbells_(std::move(fds.queueDoorbells)),
      interrupts_(std::move(fds.interrupts)),
      barMemory_(std::move(fds.barMemory)) {
  // A core is handed only the links it reads.
  if (fds.inputSegment) {
    input_ = std::make_shared<InputLink>(
        InputLink{InputSegment::open(std::move(fds.inputSegment)), std::move(fds.inputDoorbell), UniqueFd()});
    role_ = InputRole::SOURCE;
  }
}

void DeviceResources::sendPointerTo(const DeviceResources& tablet) {
  if (role_ != InputRole::SOURCE || tablet.role_ != InputRole::POINTER_SINK)
    throw std::logic_error("a pointer link joins a display to a tablet");
  pointer_ = tablet.input_;
}

void linkInputDevices(const std::vector<DeviceResources*>& devices) {
  auto tablet = std::find_if(devices.begin(), devices.end(), [](const DeviceResources* device) {
    return device->inputRole() == InputRole::POINTER_SINK;
  });
  if (tablet == devices.end()) return;
  for (DeviceResources* device : devices) {
    if (device->inputRole() == InputRole::SOURCE) device->sendPointerTo(**tablet);
  }
}

std::vector<int> DeviceResources::describe(proto::Bootstrap::Builder bootstrap, int memfd,
                                           const std::vector<RamRegion>& regions,
                                           std::span<const int> backends, Recipient recipient) const {
  bootstrap.setProtocolVersion(proto::PROTOCOL_VERSION);
  bootstrap.setDeviceName(deviceName_);
  bootstrap.setQueueCount(queueCount());
  bootstrap.setVectorCount(vectorCount());
  auto list = bootstrap.initRamRegions(static_cast<unsigned>(regions.size()));
  for (unsigned i = 0; i < list.size(); ++i) {
    list[i].setGuestPhysical(regions[i].guestPhysical);
    list[i].setSize(regions[i].size);
    list[i].setMemfdOffset(regions[i].memfdOffset);
  }
  std::vector<int> fds;
  std::vector<proto::FdRole> roles;
  auto add = [&](int fd, proto::FdRole role) {
    fds.push_back(fd);
    roles.push_back(role);
  };
  add(memfd, proto::FdRole::GUEST_MEMORY);
  add(rings_.fd(), proto::FdRole::RING_SEGMENT);
  add(state_.fd(), proto::FdRole::STATE_SEGMENT);
  bool server = recipient == Recipient::SERVER;
  if (server && (!requestWait_ || !replyRing_))
    throw std::logic_error("these resources hold no server's doorbells");
  add(server ? requestWait_.get() : requestRing_.get(), proto::FdRole::REQUEST_DOORBELL);
  add(server ? replyRing_.get() : replyWait_.get(), proto::FdRole::REPLY_DOORBELL);
  for (const auto& fd : queueDoorbells_) add(fd.get(), proto::FdRole::QUEUE_DOORBELL);
  for (const auto& fd : interrupts_) add(fd.get(), proto::FdRole::INTERRUPT);
  if (barMemory_) add(barMemory_.get(), proto::FdRole::BAR_MEMORY);
  // A display's server writes its link and the core reads it; a tablet's
  // server reads its link, which the core has no part in.
  if (input_ && (recipient == Recipient::SERVER || !serverReadsInput_)) {
    bool reads = recipient == Recipient::CORE || serverReadsInput_;
    int end = reads ? input_->readEnd.get() : input_->writeEnd.get();
    if (end < 0)
      throw std::logic_error(std::string("this side holds no ") + (reads ? "read" : "write") +
                             " end of the input link's pipe");
    add(input_->segment.fd(), proto::FdRole::INPUT_SEGMENT);
    add(end, proto::FdRole::INPUT_DOORBELL);
  }
  if (pointer_ && recipient == Recipient::SERVER) {
    add(pointer_->segment.fd(), proto::FdRole::POINTER_SEGMENT);
    add(pointer_->writeEnd.get(), proto::FdRole::POINTER_DOORBELL);
  }
  for (int backend : backends) add(backend, proto::FdRole::BACKEND);
  auto roleList = bootstrap.initFds(static_cast<unsigned>(roles.size()));
  for (unsigned i = 0; i < roles.size(); ++i) roleList.set(i, roles[i]);
  return fds;
}

void DeviceResources::markFailed() {
  StateHeader& header = state_.header();
  std::atomic_ref<uint32_t>(header.supervisorFailed).store(1, std::memory_order_release);
  // The notice was written by a server, which may have been hostile or
  // died writing it: every offset is checked against the body.
  FailureNotice notice = header.failureNotice;
  std::span<uint8_t> body = state_.body();
  for (uint32_t i = 0; i < std::min(notice.count, FailureNotice::MAX_OPS); ++i) {
    const auto& op = notice.ops[i];
    uint32_t times = std::clamp<uint32_t>(op.repeat, 1, FailureNotice::MAX_REPEAT);
    for (uint64_t k = 0, at = op.offset; k < times && at < body.size(); ++k, at += op.stride) {
      if (op.op == FailureNotice::OR_BYTE) body[at] |= op.value;
      if (op.op == FailureNotice::ADD_BYTE) body[at] = static_cast<uint8_t>(body[at] + op.value);
      if (op.stride == 0) break;
    }
  }
  if (notice.vectorOffset < body.size() - 1) {
    uint16_t vector = static_cast<uint16_t>(body[notice.vectorOffset] | body[notice.vectorOffset + 1] << 8);
    if (vector < interrupts_.size()) eventfd_write(interrupts_[vector].get(), 1);
  }
  // Wake a core waiting for a reply that will never come.
  if (replyRing_) ringDoorbellPipe(replyRing_.get());
}

bool DeviceResources::failed() const {
  return loadShared(state_.header().supervisorFailed) != 0;
}

uint32_t DeviceResources::serverGeneration() const {
  return loadShared(state_.header().generation);
}

void sendDeviceResources(int socket, const DeviceResources& resources, int memfd,
                         const std::vector<RamRegion>& regions) {
  capnp::MallocMessageBuilder builder;
  auto bootstrap = builder.initRoot<proto::Bootstrap>();
  sendWithFds(socket, builder,
              resources.describe(bootstrap, memfd, regions, {}, DeviceResources::Recipient::CORE));
}

AdoptedDevice receiveDeviceResources(int socket) {
  MessageWithFds received = receiveWithFds(socket);
  ReceivedMessage message(received.bytes);
  auto bootstrap = message.root<proto::Bootstrap>();
  BootstrapFds fds = sortBootstrapFds(bootstrap, received.fds);
  AdoptedDevice adopted;
  adopted.regions = bootstrapRamRegions(bootstrap);
  adopted.resources = std::make_unique<DeviceResources>(bootstrap.getDeviceName(), fds);
  adopted.memory = std::move(fds.memory);
  return adopted;
}

}  // namespace cellvisor
