#include "servers/virtio-net/net-device.h"

#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/little-endian.h"
#include "servers/runtime/chain-io.h"

namespace cellvisor {
namespace {

enum Feature : uint64_t {
  MAC = 1ull << 5,
  STATUS = 1ull << 16,
};
constexpr uint16_t LINK_UP = 1;
constexpr size_t MIN_FRAME = 14;  // An Ethernet header.
// Frames handled per wakeup before the loop looks at its other fds.
constexpr int RECEIVE_BUDGET = 64;

}  // namespace

NetDevice::NetDevice(const NetOptions& options, int tap, std::array<uint8_t, 6> mac)
    : options_(options), tap_(tap), frame_(HEADER + MAX_FRAME) {
  std::memcpy(config_.data(), mac.data(), mac.size());
  storeLittleEndian(config_.data() + 6, 2, LINK_UP);
  storeLittleEndian(config_.data() + 8, 2, 1);  // max_virtqueue_pairs
}

void NetDevice::attach(VirtioTransport& transport, DeviceStats& stats, std::function<void(bool)> setReading) {
  transport_ = &transport;
  stats_ = &stats;
  setReading_ = std::move(setReading);
  if (!transport.live()) return;
  // A previous instance died with these taken. A frame being sent goes
  // out again (a duplicate is what a network tolerates; a loss is what the
  // guest would notice); receive buffers are filled with the next frames.
  if (SplitVirtqueue* tx = transport.queue(TX)) {
    for (uint16_t head : transport.inflight(TX)) {
      if (tx->chainAt(head, chain_)) transmitChain(chain_);
      transport.complete(TX, head, 0);
    }
  }
  for (uint16_t head : transport.inflight(RX)) heldReceiveBuffers_.push_back(head);
}

uint64_t NetDevice::deviceFeatures() const {
  return MAC | STATUS;
}

void NetDevice::readConfig(uint32_t offset, std::span<uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < config_.size() ? config_[offset + i] : 0;
}

void NetDevice::writeConfig(uint32_t, std::span<const uint8_t>) {
  // Nothing is writable: the MAC is the host's choice (VIRTIO_NET_F_MAC).
}

void NetDevice::activate(VirtioTransport& transport) {
  transport_ = &transport;
  if (setReading_ && !reading_) {
    reading_ = true;
    setReading_(true);
  }
}

void NetDevice::reset() {
  heldReceiveBuffers_.clear();
}

void NetDevice::queueNotified(uint16_t queue) {
  if (transport_ == nullptr) return;
  if (queue == TX) {
    transmit();
  } else if (queue == RX) {
    // New receive buffers: take frames from the tap again.
    if (setReading_ && !reading_) {
      reading_ = true;
      setReading_(true);
    }
    onTapReadable();
  }
}

bool NetDevice::poll() {
  if (transport_ == nullptr || !transport_->live() || !reading_) return false;
  uint64_t before = stats_->requests;
  onTapReadable();
  return stats_->requests != before;
}

void NetDevice::transmit() {
  for (;;) {
    auto result = transport_->pop(TX, chain_);
    if (result == SplitVirtqueue::Pop::EMPTY || result == SplitVirtqueue::Pop::BROKEN) break;
    if (result == SplitVirtqueue::Pop::CHAIN) {
      transmitChain(chain_);
    } else {
      ++stats_->errors;
    }
    transport_->complete(TX, chain_.head, 0);
  }
}

void NetDevice::transmitChain(const DescriptorChain& chain) {
  ++stats_->requests;
  uint64_t frame = chain.readableBytes >= HEADER ? chain.readableBytes - HEADER : 0;
  // A transmit chain is driver-to-device only and holds one frame.
  if (!chain.writable.empty() || frame < MIN_FRAME || frame > MAX_FRAME) {
    ++stats_->errors;
    return;
  }
  iov_.clear();
  collect(chain.readable, HEADER, frame, iov_);
  if (iov_.size() > IOV_MAX) {
    ++stats_->errors;
    return;
  }
  // Straight from guest memory; the tap takes the whole frame or nothing.
  ssize_t written = ::writev(tap_, iov_.data(), static_cast<int>(iov_.size()));
  if (written != static_cast<ssize_t>(frame)) {
    ++stats_->errors;
    return;
  }
  stats_->writtenBytes += frame;
}

bool NetDevice::nextReceiveBuffer(DescriptorChain& chain) {
  while (!heldReceiveBuffers_.empty()) {
    uint16_t head = heldReceiveBuffers_.front();
    heldReceiveBuffers_.pop_front();
    SplitVirtqueue* rx = transport_->queue(RX);
    if (rx != nullptr && rx->chainAt(head, chain)) return true;
    transport_->complete(RX, head, 0);
  }
  for (;;) {
    auto result = transport_->pop(RX, chain);
    if (result == SplitVirtqueue::Pop::CHAIN) return true;
    if (result != SplitVirtqueue::Pop::BAD_CHAIN) return false;
    ++stats_->errors;
    transport_->complete(RX, chain.head, 0);
  }
}

void NetDevice::onTapReadable() {
  if (transport_ == nullptr || !transport_->live()) {
    // No driver yet: the kernel keeps (and in time drops) the frames.
    if (setReading_ && reading_) {
      reading_ = false;
      setReading_(false);
    }
    return;
  }
  for (int budget = RECEIVE_BUDGET; budget > 0; --budget) {
    // A buffer first: a frame read with nowhere to put it would be lost.
    if (!nextReceiveBuffer(chain_)) {
      if (setReading_ && reading_) {
        reading_ = false;
        setReading_(false);
      }
      return;
    }
    ssize_t length = ::read(tap_, frame_.data() + HEADER, MAX_FRAME);
    if (length <= 0) {
      heldReceiveBuffers_.push_front(chain_.head);  // Nothing to receive: keep the buffer.
      return;
    }
    std::memset(frame_.data(), 0, HEADER);
    storeLittleEndian(frame_.data() + 10, 2, 1);  // num_buffers: the frame fits one buffer.
    size_t total = HEADER + static_cast<size_t>(length);
    ++stats_->requests;
    if (!chain_.readable.empty() || !scatter(chain_, 0, {frame_.data(), total})) {
      // A receive buffer the device may not write, or one too small for
      // the frame: the frame is dropped, the buffer returned empty.
      ++stats_->errors;
      transport_->complete(RX, chain_.head, 0);
      continue;
    }
    stats_->readBytes += static_cast<uint64_t>(length);
    transport_->complete(RX, chain_.head, static_cast<uint32_t>(total));
  }
}

}  // namespace cellvisor
