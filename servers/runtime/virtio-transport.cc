#include "servers/runtime/virtio-transport.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>

#include "base/guest-memory.h"
#include "base/little-endian.h"

namespace cellvisor {
namespace {

constexpr uint16_t VIRTIO_VENDOR = 0x1af4;
constexpr uint16_t MODERN_DEVICE_BASE = 0x1040;
constexpr uint16_t MSIX_CAP = 0x98;
constexpr uint16_t PCI_CFG_CAP = 0x84;
constexpr uint16_t PCI_CFG_DATA = PCI_CFG_CAP + 16;
constexpr uint8_t ISR_QUEUE = 1;
constexpr uint8_t ISR_CONFIG = 2;

// What a successor finds in the state segment after a kill is what was
// stored, in the order the code stored it only if the compiler kept that
// order (x86 keeps it in hardware): the records that make a restart exact
// depend on it.
void keepStoreOrder() {
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

bool validSize(uint8_t size) {
  return size == 1 || size == 2 || size == 4 || size == 8;
}

}  // namespace

VirtioTransport::VirtioTransport(VirtioDevice& device, GuestMemory& memory, StateHeader& header,
                                 VirtioState& state)
    : device_(device), memory_(memory), header_(header), state_(state), queues_(device.queueCount()) {
  if (device.queueCount() == 0 || device.queueCount() > MAX_QUEUES) {
    throw std::invalid_argument("a virtio device has 1 to " + std::to_string(MAX_QUEUES) + " queues");
  }
  initializeConfigSpace();
}

void VirtioTransport::start(std::function<void(uint16_t)> signal) {
  msix_->setSignal(std::move(signal));
  // A restarted server finds the guest's programming in place; rebuild the
  // live queue objects from it and finish a completion cut short.
  if (live()) {
    activateQueues();
    recoverCompletions();
    skipEntriesTakenBefore();
    // A predecessor may have died after publishing a completion and before
    // its message: each queue is announced again (a spare interrupt finds
    // nothing new in the used ring and is harmless).
    for (uint16_t index = 0; index < device_.queueCount(); ++index) {
      if (queue(index) != nullptr) raise(state_.queues[index].msixVector, ISR_QUEUE);
    }
  }
}

void VirtioTransport::skipEntriesTakenBefore() {
  // pop() records a head in flight before it moves past its avail entry: a
  // predecessor that died between the two left the entry to be taken again.
  // It is passed over here, before the in-flight table is replayed, not
  // lazily at the next pop: by then the replay may have completed (and
  // forgotten) it, and the entry would run a second time.
  for (uint16_t index = 0; index < device_.queueCount(); ++index) {
    SplitVirtqueue* live = queue(index);
    if (live == nullptr) continue;
    DescriptorChain chain;
    auto result = live->peek(chain);
    if (result == SplitVirtqueue::Pop::EMPTY || result == SplitVirtqueue::Pop::BROKEN) continue;
    if (state_.queues[index].inflight[chain.head % MAX_QUEUE_SIZE] != 0) live->consume();
  }
}

FunctionLayout VirtioTransport::layout() const {
  FunctionLayout layout;
  layout.bars.push_back({0, BAR0_SIZE, pci::BarKind::MEMORY64});
  for (uint16_t queue = 0; queue < device_.queueCount(); ++queue) {
    layout.doorbells.push_back({0, NOTIFY + NOTIFY_MULTIPLIER * queue, 0, queue});
  }
  layout.doorbellCount = device_.queueCount();
  layout.msixVectors = vectorCount();
  return layout;
}

FailureNotice VirtioTransport::failureNotice() const {
  // DEVICE_NEEDS_RESET, a new configuration generation, the configuration
  // ISR bit, and the configuration vector (virtio 1.x, 2.1.2).
  FailureNotice notice{};
  notice.count = 3;
  notice.ops[0] = {offsetof(VirtioState, status), FailureNotice::OR_BYTE, NEEDS_RESET, 0};
  notice.ops[1] = {offsetof(VirtioState, configGeneration), FailureNotice::ADD_BYTE, 1, 0};
  notice.ops[2] = {offsetof(VirtioState, isr), FailureNotice::OR_BYTE, ISR_CONFIG, 0};
  notice.vectorOffset = offsetof(VirtioState, configVector);
  return notice;
}

std::vector<MsixUpdate> VirtioTransport::reset() {
  std::vector<MsixUpdate> effects = configWrite(0, 1, 0);  // Config offset 0 is read-only: no-op.
  barWrite(0, COMMON + 0x14, 1, 0);
  return effects;
}

void VirtioTransport::pause() {
  paused_ = true;
  device_.quiesce();
}

void VirtioTransport::resume() {
  paused_ = false;
  for (uint16_t queue = 0; queue < device_.queueCount(); ++queue) doorbell(queue);
}

bool VirtioTransport::poll() {
  bool worked = device_.poll();
  for (uint16_t index = 0; index < device_.queueCount(); ++index) {
    SplitVirtqueue* live = queue(index);
    if (live != nullptr && live->pending() != 0) {
      doorbell(index);
      worked = true;
    }
  }
  return worked;
}

void VirtioTransport::initializeConfigSpace() {
  // A restart keeps what the guest programmed; only the write masks are rebuilt.
  bool restored =
      claimState(header_, VIRTIO_STATE_MAGIC, VIRTIO_STATE_LAYOUT_VERSION) == StateOrigin::RESTORED;
  if (!restored) std::memset(&state_, 0, sizeof(state_));
  config_.emplace(std::span<uint8_t>(state_.pciConfig),
                  restored ? pci::ConfigSpace::Contents::RESTORED : pci::ConfigSpace::Contents::FRESH);
  pci::ConfigSpace& config = *config_;
  config.setIdentity({.vendor = VIRTIO_VENDOR,
                      .device = static_cast<uint16_t>(MODERN_DEVICE_BASE + device_.deviceId()),
                      .revision = 0x01,  // A modern-only device.
                      .subclass = device_.pciSubclass(),
                      .classCode = device_.pciClass(),
                      .subsystemVendor = VIRTIO_VENDOR,
                      .subsystem = 0x1100});
  config.setBar(0, {pci::BarKind::MEMORY64, BAR0_SIZE, false}, 0);
  // The virtio capabilities (virtio 1.x, 4.1.4), then MSI-X.
  struct Cap {
    uint8_t length;
    uint8_t type;
    uint32_t offset;
  };
  for (const Cap& cap :
       {Cap{16, 1, COMMON}, Cap{20, 2, NOTIFY}, Cap{16, 3, ISR}, Cap{16, 4, DEVICE_CONFIG}, Cap{20, 5, 0}}) {
    uint16_t at = config.addCapability(pci::CAPABILITY_VENDOR, cap.length);
    config.setByte(static_cast<uint16_t>(at + 2), cap.length);
    config.setByte(static_cast<uint16_t>(at + 3), cap.type);
    if (cap.type == 5) {  // VIRTIO_PCI_CAP_PCI_CFG: a window the guest points anywhere in BAR0.
      config.setByte(static_cast<uint16_t>(at + 4), 0, 0xff);
      config.set32(static_cast<uint16_t>(at + 8), 0, 0xffffffff);
      config.set32(static_cast<uint16_t>(at + 12), 0, 0xffffffff);
      continue;
    }
    config.set32(static_cast<uint16_t>(at + 8), cap.offset);
    config.set32(static_cast<uint16_t>(at + 12), 0x1000);
    if (cap.type == 2) config.set32(static_cast<uint16_t>(at + 16), NOTIFY_MULTIPLIER);
  }
  msix_.emplace(config, std::span<pci::MsixEntry>(state_.msix, vectorCount()),
                std::span<uint64_t>(state_.msixPending));
  uint16_t msix = msix_->addCapability(0, MSIX_TABLE, MSIX_PBA);
  if (msix != MSIX_CAP || config.read(PCI_CFG_CAP, 1) != pci::CAPABILITY_VENDOR) {
    throw std::logic_error("virtio-pci capability layout changed: the state segment would not match");
  }
  if (restored) return;
  msix_->reset();
  resetDevice();
  publishState(header_, VIRTIO_STATE_MAGIC, VIRTIO_STATE_LAYOUT_VERSION);
}

uint64_t VirtioTransport::offeredFeatures() const {
  return device_.deviceFeatures() | F_VERSION_1 | F_INDIRECT_DESC | F_EVENT_IDX;
}

uint32_t VirtioTransport::configRead(uint16_t offset, uint8_t size) {
  if ((size != 1 && size != 2 && size != 4) || offset % size) return 0xffffffff;
  if (offset >= sizeof(state_.pciConfig)) return 0;  // No extended capabilities.
  if (offset >= PCI_CFG_DATA && offset < PCI_CFG_DATA + 4) {
    std::vector<MsixUpdate> ignored;
    return pciCfgWindowAccess(false, size, 0, ignored);
  }
  return config_->read(offset, size);
}

std::vector<MsixUpdate> VirtioTransport::configWrite(uint16_t offset, uint8_t size, uint32_t value) {
  std::vector<MsixUpdate> effects;
  if ((size != 1 && size != 2 && size != 4) || offset % size || offset >= sizeof(state_.pciConfig))
    return effects;
  if (offset >= PCI_CFG_DATA && offset < PCI_CFG_DATA + 4) {
    pciCfgWindowAccess(true, size, value, effects);
    return effects;
  }
  uint16_t controlBefore = msix_->control();
  config_->write(offset, size, value);
  if (msix_->control() != controlBefore) msix_->controlWritten();
  return effects;
}

uint32_t VirtioTransport::pciCfgWindowAccess(bool write, uint8_t size, uint32_t value,
                                             std::vector<MsixUpdate>& effects) {
  uint8_t bar = state_.pciConfig[PCI_CFG_CAP + 4];
  uint32_t offset = static_cast<uint32_t>(loadLittleEndian(state_.pciConfig + PCI_CFG_CAP + 8, 4));
  uint32_t length = static_cast<uint32_t>(loadLittleEndian(state_.pciConfig + PCI_CFG_CAP + 12, 4));
  if (length != size) return 0xffffffff;
  if (write) {
    effects = barWrite(bar, offset, size, value);
    return 0;
  }
  return static_cast<uint32_t>(barRead(bar, offset, size));
}

uint64_t VirtioTransport::barRead(uint8_t bar, uint64_t offset, uint8_t size) {
  if (bar != 0 || !validSize(size) || offset >= BAR0_SIZE || size > BAR0_SIZE - offset) return ~0ull;
  if (offset < ISR) return commonRead(offset - COMMON, size);
  if (offset < DEVICE_CONFIG) {
    if (offset != ISR) return 0;
    uint8_t isr = state_.isr;
    state_.isr = 0;  // Reading ISR acknowledges it.
    return isr;
  }
  if (offset < NOTIFY) {
    uint8_t bytes[8] = {};
    device_.readConfig(static_cast<uint32_t>(offset - DEVICE_CONFIG), {bytes, size});
    return loadLittleEndian(bytes + 0, size);
  }
  if (offset < MSIX_TABLE) return 0;
  if (offset < MSIX_PBA) return msix_->tableRead(offset - MSIX_TABLE, size);
  return msix_->pbaRead(offset - MSIX_PBA, size);
}

std::vector<MsixUpdate> VirtioTransport::barWrite(uint8_t bar, uint64_t offset, uint8_t size,
                                                  uint64_t value) {
  std::vector<MsixUpdate> effects;
  if (bar != 0 || !validSize(size) || offset >= BAR0_SIZE || size > BAR0_SIZE - offset) return effects;
  if (offset < ISR) {
    commonWrite(offset - COMMON, size, value);
  } else if (offset >= DEVICE_CONFIG && offset < NOTIFY) {
    uint8_t bytes[8];
    storeLittleEndian(bytes + 0, size, value);
    device_.writeConfig(static_cast<uint32_t>(offset - DEVICE_CONFIG), {bytes, size});
  } else if (offset >= NOTIFY && offset < MSIX_TABLE) {
    // Normally an ioeventfd catches these; a write that reaches us is a kick too.
    uint64_t queue = (offset - NOTIFY) / NOTIFY_MULTIPLIER;
    if (queue < device_.queueCount()) doorbell(static_cast<uint16_t>(queue));
  } else if (offset >= MSIX_TABLE && offset < MSIX_PBA) {
    if (auto update = msix_->tableWrite(offset - MSIX_TABLE, size, value)) effects.push_back(*update);
  }
  return effects;  // ISR and PBA are read-only.
}

uint64_t VirtioTransport::commonRead(uint64_t offset, uint8_t size) {
  uint16_t select = state_.queueSelect;
  QueueState* queue = select < device_.queueCount() ? &state_.queues[select] : nullptr;
  auto field = [&](uint64_t value, uint64_t at, int width) -> uint64_t {
    // Narrower reads of a wider register see its bytes.
    return (value >> (8 * (offset - at))) & (size >= 8 ? ~0ull : ((1ull << (8 * size)) - 1)) &
           (width >= 8 ? ~0ull : ((1ull << (8 * width)) - 1));
  };
  if (offset < 0x04) return field(state_.deviceFeatureSelect, 0x00, 4);
  if (offset < 0x08) {
    uint64_t features =
        state_.deviceFeatureSelect < 2 ? offeredFeatures() >> (32 * state_.deviceFeatureSelect) : 0;
    return field(static_cast<uint32_t>(features), 0x04, 4);
  }
  if (offset < 0x0c) return field(state_.driverFeatureSelect, 0x08, 4);
  if (offset < 0x10) {
    uint64_t features =
        state_.driverFeatureSelect < 2 ? state_.driverFeatures >> (32 * state_.driverFeatureSelect) : 0;
    return field(static_cast<uint32_t>(features), 0x0c, 4);
  }
  if (offset < 0x12) return field(state_.configVector, 0x10, 2);
  if (offset < 0x14) return field(device_.queueCount(), 0x12, 2);
  if (offset == 0x14) return state_.status;
  if (offset == 0x15) return state_.configGeneration;
  if (offset < 0x18) return field(state_.queueSelect, 0x16, 2);
  if (queue == nullptr) return 0;
  if (offset < 0x1a) return field(queue->size, 0x18, 2);
  if (offset < 0x1c) return field(queue->msixVector, 0x1a, 2);
  if (offset < 0x1e) return field(queue->enabled, 0x1c, 2);
  if (offset < 0x20) return field(select, 0x1e, 2);  // queue_notify_off = queue index.
  if (offset < 0x28) return field(queue->descriptors, 0x20, 8);
  if (offset < 0x30) return field(queue->driverArea, 0x28, 8);
  if (offset < 0x38) return field(queue->deviceArea, 0x30, 8);
  return 0;
}

void VirtioTransport::commonWrite(uint64_t offset, uint8_t size, uint64_t value) {
  uint16_t select = state_.queueSelect;
  QueueState* queue = select < device_.queueCount() ? &state_.queues[select] : nullptr;
  // 64-bit queue addresses may be written as two 32-bit halves.
  auto merge = [&](uint64_t& target, uint64_t at) {
    uint64_t shift = 8 * (offset - at);
    uint64_t mask = (size >= 8 ? ~0ull : ((1ull << (8 * size)) - 1)) << shift;
    target = (target & ~mask) | ((value << shift) & mask);
  };
  bool queueEditable = queue != nullptr && !(state_.status & DRIVER_OK);
  switch (offset) {
    case 0x00:
      state_.deviceFeatureSelect = static_cast<uint32_t>(value);
      return;
    case 0x08:
      state_.driverFeatureSelect = static_cast<uint32_t>(value);
      return;
    case 0x0c:
      if (state_.driverFeatureSelect < 2 && !(state_.status & FEATURES_OK)) {
        uint64_t shift = 32 * state_.driverFeatureSelect;
        state_.driverFeatures =
            (state_.driverFeatures & ~(0xffffffffull << shift)) | ((value & 0xffffffff) << shift);
      }
      return;
    case 0x10:
      // A vector the device does not have reads back as NO_VECTOR (virtio
      // 1.x, 4.1.5.1.2.1), as for the queues.
      state_.configVector =
          static_cast<uint16_t>(value) < vectorCount() ? static_cast<uint16_t>(value) : NO_VECTOR;
      return;
    case 0x14:
      setStatus(static_cast<uint8_t>(value));
      return;
    case 0x16:
      state_.queueSelect = static_cast<uint16_t>(value);
      return;
    case 0x18:
      // Sizes must be powers of two no larger than we offer; others are ignored.
      if (queueEditable && value != 0 && value <= device_.queueMaxSize() && (value & (value - 1)) == 0) {
        queue->size = static_cast<uint16_t>(value);
      }
      return;
    case 0x1a:
      if (queue != nullptr)
        queue->msixVector =
            static_cast<uint16_t>(value) < vectorCount() ? static_cast<uint16_t>(value) : NO_VECTOR;
      return;
    case 0x1c:
      if (queueEditable) queue->enabled = value == 1;
      return;
    default:
      break;
  }
  if (!queueEditable) return;
  if (offset >= 0x20 && offset < 0x28)
    merge(queue->descriptors, 0x20);
  else if (offset >= 0x28 && offset < 0x30)
    merge(queue->driverArea, 0x28);
  else if (offset >= 0x30 && offset < 0x38)
    merge(queue->deviceArea, 0x30);
}

void VirtioTransport::setStatus(uint8_t status) {
  if (status == 0) {
    device_.reset();
    resetDevice();
    return;
  }
  uint8_t added = status & ~state_.status;
  if (added & FEATURES_OK) {
    uint64_t wanted = state_.driverFeatures;
    // A driver must accept VERSION_1 and nothing we did not offer.
    if ((wanted & ~offeredFeatures()) || !(wanted & F_VERSION_1)) status &= ~FEATURES_OK;
  }
  if ((added & DRIVER_OK) && !(status & FEATURES_OK)) status &= ~DRIVER_OK;
  state_.status = static_cast<uint8_t>(status | (state_.status & NEEDS_RESET));
  if (added & DRIVER_OK && (state_.status & DRIVER_OK)) {
    activateQueues();
    if (live()) device_.activate(*this);
  }
}

void VirtioTransport::resetDevice() {
  state_.status = 0;
  state_.driverFeatures = 0;
  state_.deviceFeatureSelect = state_.driverFeatureSelect = 0;
  state_.configVector = NO_VECTOR;
  state_.queueSelect = 0;
  state_.isr = 0;
  for (uint16_t i = 0; i < MAX_QUEUES; ++i) {
    QueueState& queue = state_.queues[i];
    std::memset(&queue, 0, sizeof(queue));
    queue.size = i < device_.queueCount() ? device_.queueMaxSize() : 0;
    queue.msixVector = NO_VECTOR;
  }
  for (auto& live : queues_) live.reset();
}

void VirtioTransport::activateQueues() {
  for (uint16_t i = 0; i < device_.queueCount(); ++i) {
    QueueState& queue = state_.queues[i];
    queues_[i].reset();
    if (!queue.enabled) continue;
    try {
      queues_[i].emplace(memory_,
                         VirtqueueLayout{queue.size, queue.descriptors, queue.driverArea, queue.deviceArea},
                         queue.position, featureNegotiated(F_INDIRECT_DESC), featureNegotiated(F_EVENT_IDX));
    } catch (const std::invalid_argument&) {
      markBroken();  // Rings outside RAM: the driver must reset us.
      return;
    }
  }
}

SplitVirtqueue* VirtioTransport::queue(uint16_t index) {
  if (index >= queues_.size() || !queues_[index]) return nullptr;
  return &*queues_[index];
}

void VirtioTransport::doorbell(uint16_t index) {
  if (index < device_.queueCount() && !paused_ && live() && queue(index) != nullptr) {
    device_.queueNotified(index);
  }
}

SplitVirtqueue::Pop VirtioTransport::pop(uint16_t index, DescriptorChain& chain) {
  SplitVirtqueue* live = queue(index);
  if (live == nullptr || !this->live() || paused_) return SplitVirtqueue::Pop::EMPTY;
  QueueState& queue = state_.queues[index];
  for (;;) {
    auto result = live->peek(chain);
    if (result == SplitVirtqueue::Pop::BROKEN) markBroken();
    if (result == SplitVirtqueue::Pop::BROKEN || result == SplitVirtqueue::Pop::EMPTY) return result;
    uint64_t& inflight = queue.inflight[chain.head % MAX_QUEUE_SIZE];
    if (inflight != 0) {
      // A head offered again while still in flight: only a driver that
      // breaks the protocol does that (a predecessor's half-taken entry was
      // passed over at start); it is not run twice.
      live->consume();
      continue;
    }
    inflight = ++queue.nextSequence;  // Recorded before it is taken.
    keepStoreOrder();
    live->consume();
    return result;
  }
}

void VirtioTransport::complete(uint16_t index, uint16_t head, uint32_t writtenBytes) {
  SplitVirtqueue* live = queue(index);
  if (live == nullptr) return;
  QueueState& queue = state_.queues[index];
  queue.completing = {1, head, queue.position.used, 0, writtenBytes, 0};
  keepStoreOrder();
  live->pushUsed(head, writtenBytes);
  queue.inflight[head % MAX_QUEUE_SIZE] = 0;
  keepStoreOrder();
  queue.completing.active = 0;
  if (live->shouldInterrupt()) raise(queue.msixVector, ISR_QUEUE);
}

void VirtioTransport::recoverCompletions() {
  for (uint16_t index = 0; index < device_.queueCount(); ++index) {
    SplitVirtqueue* live = queue(index);
    QueueState& queue = state_.queues[index];
    if (live == nullptr || !queue.completing.active) continue;
    auto& record = queue.completing;
    if (live->publishedUsed() == static_cast<uint16_t>(record.usedBefore + 1)) {
      // The driver already sees it; only the bookkeeping was left.
      queue.position.used = static_cast<uint16_t>(record.usedBefore + 1);
      queue.inflight[record.head % MAX_QUEUE_SIZE] = 0;
      record.active = 0;
    } else {
      live->resetUsed(record.usedBefore);
      record.active = 0;
      complete(index, record.head, record.length);
    }
  }
}

std::vector<uint16_t> VirtioTransport::inflight(uint16_t index) const {
  std::vector<std::pair<uint64_t, uint16_t>> order;
  const QueueState& queue = state_.queues[index];
  for (uint16_t head = 0; head < std::min<uint16_t>(queue.size, MAX_QUEUE_SIZE); ++head) {
    if (queue.inflight[head] != 0) order.emplace_back(queue.inflight[head], head);
  }
  std::sort(order.begin(), order.end());
  std::vector<uint16_t> heads;
  for (const auto& [sequence, head] : order) heads.push_back(head);
  return heads;
}

void VirtioTransport::markBroken() {
  if (state_.status & NEEDS_RESET) return;
  state_.status |= NEEDS_RESET;
  ++state_.configGeneration;
  raise(state_.configVector, ISR_CONFIG);
}

void VirtioTransport::raise(uint16_t vector, uint8_t isrBits) {
  state_.isr |= isrBits;
  msix_->raise(vector);  // NO_VECTOR: the driver polls.
}

std::vector<MsixUpdate> VirtioTransport::msixVectors() const {
  return msix_->vectors();
}

}  // namespace cellvisor
