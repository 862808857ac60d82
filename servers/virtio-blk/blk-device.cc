#include "servers/virtio-blk/blk-device.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "base/little-endian.h"
#include "servers/runtime/chain-io.h"

namespace cellvisor {
namespace {

enum Feature : uint64_t {
  SIZE_MAX_F = 1ull << 1,
  SEG_MAX_F = 1ull << 2,
  RO = 1ull << 5,
  BLK_SIZE = 1ull << 6,
  FLUSH = 1ull << 9,
  TOPOLOGY = 1ull << 10,
  CONFIG_WCE = 1ull << 11,
  MQ = 1ull << 12,
  DISCARD = 1ull << 13,
  WRITE_ZEROES = 1ull << 14,
};

enum RequestType : uint32_t {
  IN = 0,
  OUT = 1,
  FLUSH_REQ = 4,
  GET_ID = 8,
  DISCARD_REQ = 11,
  WRITE_ZEROES_REQ = 13
};
enum Status : uint8_t { OK = 0, IOERR = 1, UNSUPP = 2 };
constexpr uint32_t SECTOR = 512;
constexpr size_t HEADER = 16;
constexpr size_t SEGMENT = 16;  // Discard / write-zeroes segment.

}  // namespace

BlkDevice::BlkDevice(const BlkOptions& options, BlockBackend& backend)
    : options_(options), backend_(backend), requests_(options.queues) {
  for (auto& queue : requests_) queue.resize(options_.queueSize);
  uint8_t* config = config_.data();
  storeLittleEndian(config + 0x00, 8, backend.sizeBytes() / SECTOR);
  storeLittleEndian(config + 0x08, 4, SEGMENT_SIZE_MAX);
  storeLittleEndian(config + 0x0c, 4, SEG_MAX);
  storeLittleEndian(config + 0x14, 4, options.logicalSectorSize);
  storeLittleEndian(
      config + 0x18, 1,
      static_cast<uint8_t>(std::countr_zero(options.physicalSectorSize / options.logicalSectorSize)));
  storeLittleEndian(config + 0x1a, 2, 1);  // Minimum I/O size, in logical blocks.
  storeLittleEndian(config + 0x1c, 4, 0);
  storeLittleEndian(config + 0x22, 2, options.queues);
  storeLittleEndian(config + 0x24, 4, 0xffffffffu / SECTOR);  // Max discard sectors.
  storeLittleEndian(config + 0x28, 4, MAX_DISCARD_SEGMENTS);
  storeLittleEndian(config + 0x2c, 4, options.logicalSectorSize / SECTOR);
  storeLittleEndian(config + 0x30, 4, 0xffffffffu / SECTOR);  // Max write-zeroes sectors.
  storeLittleEndian(config + 0x34, 4, MAX_DISCARD_SEGMENTS);
  storeLittleEndian(config + 0x38, 1, options.noDelete ? 0 : 1);
}

void BlkDevice::attach(VirtioTransport& transport, DeviceStats& stats) {
  transport_ = &transport;
  stats_ = &stats;
  // A restarted server finds requests it had taken but not finished.
  if (transport_->live()) resubmitInflight();
}

bool BlkDevice::poll() {
  size_t before = backend_.outstanding();
  if (before == 0) return false;
  onCompletions();
  return backend_.outstanding() != before;
}

void BlkDevice::drain() {
  while (backend_.outstanding() > 0) {
    backend_.waitForCompletion();
    onCompletions();
  }
}

uint64_t BlkDevice::deviceFeatures() const {
  uint64_t features = SIZE_MAX_F | SEG_MAX_F | BLK_SIZE | FLUSH | TOPOLOGY | CONFIG_WCE | MQ | WRITE_ZEROES;
  if (options_.readOnly) features |= RO;
  if (!options_.noDelete && !options_.readOnly) features |= DISCARD;
  return features;
}

void BlkDevice::readConfig(uint32_t offset, std::span<uint8_t> data) {
  config_[0x20] = writeback_ ? 1 : 0;
  for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < config_.size() ? config_[offset + i] : 0;
}

void BlkDevice::writeConfig(uint32_t offset, std::span<const uint8_t> data) {
  // Only the writeback flag is writable (CONFIG_WCE).
  if (offset == 0x20 && data.size() == 1) writeback_ = data[0] != 0;
}

void BlkDevice::activate(VirtioTransport& transport) {
  transport_ = &transport;
}

void BlkDevice::reset() {
  // Once the driver reads status 0 it may reuse every buffer it gave us, and
  // the request slots (with the iovecs the backend reads) are about to be
  // cleared. So: forget what never reached the kernel, wait for what did
  // (its results, of the old generation, are dropped), then clear.
  ++generation_;
  backend_.dropWaiting();
  drain();
  for (auto& queue : requests_) {
    for (auto& request : queue) request = Request{};
  }
}

void BlkDevice::queueNotified(uint16_t queue) {
  if (transport_ == nullptr || queue >= requests_.size()) return;
  for (;;) {
    auto result = transport_->pop(queue, chain_);
    if (result == SplitVirtqueue::Pop::EMPTY || result == SplitVirtqueue::Pop::BROKEN) break;
    ++stats_->requests;
    if (result == SplitVirtqueue::Pop::BAD_CHAIN) {
      // Addresses outside RAM, loops, wrong order: nothing in it can be
      // trusted, not even the status byte. Return the buffer untouched.
      ++stats_->errors;
      transport_->complete(queue, chain_.head, 0);
      continue;
    }
    handle(queue, chain_);
  }
  backend_.flushSubmissions();
}

void BlkDevice::resubmitInflight() {
  for (uint16_t queue = 0; queue < requests_.size(); ++queue) {
    SplitVirtqueue* live = transport_->queue(queue);
    if (live == nullptr) continue;
    for (uint16_t head : transport_->inflight(queue)) {
      // Reads and writes are idempotent: doing them again is safe.
      if (live->chainAt(head, chain_)) {
        handle(queue, chain_);
      } else {
        transport_->complete(queue, head, 0);
      }
    }
  }
  backend_.flushSubmissions();
}

void BlkDevice::handle(uint16_t queue, const DescriptorChain& chain) {
  Request& request = requests_[queue][chain.head % requests_[queue].size()];
  request.busy = true;
  request.iov.clear();
  request.status = nullptr;
  request.written = 0;
  request.operations = 0;
  request.failed = false;
  if (chain.writable.empty() || chain.writable.back().empty()) {
    // No status byte to report into.
    ++stats_->errors;
    request.busy = false;
    transport_->complete(queue, chain.head, 0);
    return;
  }
  request.status = &chain.writable.back().back();
  request.written = 1;
  int status = start(queue, chain, request);
  if (status >= 0) finish(queue, chain.head, static_cast<uint8_t>(status));
}

int BlkDevice::start(uint16_t queue, const DescriptorChain& chain, Request& request) {
  uint8_t header[HEADER];
  if (chain.readableBytes < HEADER || !gather(chain, 0, {header, HEADER})) return IOERR;
  uint32_t type;
  uint64_t sector;
  std::memcpy(&type, header, 4);
  std::memcpy(&sector, header + 8, 8);
  uint64_t capacity = backend_.sizeBytes() / SECTOR;
  uint64_t tag = tagFor(queue, chain.head);
  uint64_t dataOut = chain.readableBytes - HEADER;  // Driver-to-device payload.
  uint64_t dataIn = chain.writableBytes - 1;        // Room before the status byte.

  switch (type) {
    case IN:
    case OUT: {
      bool isRead = type == IN;
      uint64_t bytes = isRead ? dataIn : dataOut;
      // Wrong direction: payload on the side the request type does not use.
      if ((isRead && dataOut != 0) || (!isRead && dataIn != 0)) return IOERR;
      if (bytes % SECTOR != 0 || bytes > uint64_t{SEG_MAX} * SEGMENT_SIZE_MAX) return IOERR;
      if (sector > capacity || bytes / SECTOR > capacity - sector) return IOERR;
      if (!isRead && backend_.readOnly()) return IOERR;
      if (bytes == 0) return OK;
      if (isRead) {
        collect(chain.writable, 0, bytes, request.iov);
      } else {
        collect(chain.readable, HEADER, bytes, request.iov);
      }
      if (request.iov.size() > SEG_MAX + 2) return IOERR;
      request.isRead = isRead;
      request.bytes = bytes;
      request.operations = 1;
      backend_.submit(isRead ? BlockBackend::Op::READ : BlockBackend::Op::WRITE, tag, request.iov,
                      sector * SECTOR);
      return -1;
    }
    case FLUSH_REQ:
      request.operations = 1;
      backend_.submit(BlockBackend::Op::FLUSH, tag, {}, 0);
      return -1;
    case GET_ID: {
      if (dataIn == 0) return IOERR;
      uint8_t id[20] = {};
      std::memcpy(id, options_.serial.data(), std::min<size_t>(options_.serial.size(), sizeof(id)));
      std::vector<iovec> out;
      collect(chain.writable, 0, std::min<uint64_t>(dataIn, sizeof(id)), out);
      size_t copied = 0;
      for (const auto& piece : out) {
        std::memcpy(piece.iov_base, id + copied, piece.iov_len);
        copied += piece.iov_len;
      }
      request.written += static_cast<uint32_t>(copied);
      return OK;
    }
    case DISCARD_REQ:
    case WRITE_ZEROES_REQ: {
      bool discard = type == DISCARD_REQ;
      if (discard && (options_.noDelete || !transport_->featureNegotiated(DISCARD))) return UNSUPP;
      if (backend_.readOnly()) return IOERR;
      if (dataOut == 0 || dataOut % SEGMENT != 0 || dataOut / SEGMENT > MAX_DISCARD_SEGMENTS) return IOERR;
      uint8_t segments[MAX_DISCARD_SEGMENTS * SEGMENT];
      if (!gather(chain, HEADER, {segments, dataOut})) return IOERR;
      struct Segment {
        uint64_t start;
        uint32_t count;
        uint32_t flags;
      };
      auto segmentAt = [&](uint64_t at) {
        Segment segment;
        std::memcpy(&segment.start, segments + at, 8);
        std::memcpy(&segment.count, segments + at + 8, 4);
        std::memcpy(&segment.flags, segments + at + 12, 4);
        return segment;
      };
      // Validate every segment before touching the disk.
      for (uint64_t at = 0; at < dataOut; at += SEGMENT) {
        auto [start, count, flags] = segmentAt(at);
        if (start > capacity || count > capacity - start || (flags & ~1u) || (discard && flags))
          return UNSUPP;
      }
      for (uint64_t at = 0; at < dataOut; at += SEGMENT) {
        auto [start, count, flags] = segmentAt(at);
        if (count == 0) continue;
        ++request.operations;
        bool unmap = (flags & 1) && !options_.noDelete;
        backend_.submit(discard ? BlockBackend::Op::DISCARD : BlockBackend::Op::WRITE_ZEROES, tag, {},
                        start * SECTOR, uint64_t{count} * SECTOR, unmap);
      }
      return request.operations == 0 ? OK : -1;
    }
    default:
      return UNSUPP;
  }
}

void BlkDevice::onCompletions() {
  backend_.reap([this](uint64_t tag, int32_t result) {
    if (static_cast<uint32_t>(tag >> 32) != generation_) return;  // From before a reset.
    auto queue = static_cast<uint16_t>(tag >> 16);
    auto head = static_cast<uint16_t>(tag);
    if (queue >= requests_.size()) return;
    Request& request = requests_[queue][head % requests_[queue].size()];
    if (!request.busy || request.operations == 0) return;  // Reset while in flight.
    if (result < 0 || (request.bytes != 0 && static_cast<uint64_t>(result) != request.bytes))
      request.failed = true;
    if (--request.operations > 0) return;
    if (!request.failed && request.isRead) request.written += static_cast<uint32_t>(request.bytes);
    (request.isRead ? stats_->readBytes : stats_->writtenBytes) += request.failed ? 0 : request.bytes;
    finish(queue, head, request.failed ? IOERR : OK);
  });
}

void BlkDevice::finish(uint16_t queue, uint16_t head, uint8_t status) {
  Request& request = requests_[queue][head % requests_[queue].size()];
  if (status != OK) ++stats_->errors;
  *request.status = status;
  request.busy = false;
  request.bytes = 0;
  request.isRead = false;
  transport_->complete(queue, head, request.written);
}

}  // namespace cellvisor
