#include "proto/ring.h"

#include <cstring>
#include <stdexcept>

namespace cellvisor {
namespace {

constexpr uint64_t align8(uint64_t n) {
  return (n + 7) & ~uint64_t{7};
}
constexpr uint64_t HEADER = 8;  // u32 length + u32 reserved, keeps payloads 8-aligned.

void storeLength(uint8_t* at, uint32_t length) {
  std::memcpy(at, &length, sizeof(length));
}

}  // namespace

RingWriter::RingWriter(RingIndices* indices, uint8_t* data, uint32_t capacity)
    : indices_(indices),
      data_(data),
      capacity_(capacity),
      head_(indices->head.load(std::memory_order_relaxed)) {
  if (capacity == 0 || (capacity & (capacity - 1)) != 0 || capacity < 64) {
    throw std::invalid_argument("ring capacity must be a power of two >= 64");
  }
}

bool RingWriter::tryWrite(std::span<const uint8_t> message) {
  if (message.size() > maxMessage()) throw std::length_error("message larger than the ring can carry");
  uint64_t frame = HEADER + align8(message.size());
  uint64_t tail = indices_->tail.load(std::memory_order_acquire);
  uint64_t used = head_ - tail;
  if (used > capacity_) used = capacity_;  // A lying consumer only stalls itself.
  uint64_t offset = head_ & (capacity_ - 1);
  uint64_t toEnd = capacity_ - offset;
  uint64_t needed = frame <= toEnd ? frame : toEnd + frame;
  if (capacity_ - used < needed) return false;
  if (frame > toEnd) {
    // Not enough room before the end: mark the rest as skipped and wrap.
    storeLength(data_ + offset, RING_WRAP_MARKER);
    head_ += toEnd;
    offset = 0;
  }
  storeLength(data_ + offset, static_cast<uint32_t>(message.size()));
  std::memcpy(data_ + offset + HEADER, message.data(), message.size());
  head_ += frame;
  indices_->head.store(head_, std::memory_order_release);
  return true;
}

RingReader::RingReader(RingIndices* indices, uint8_t* data, uint32_t capacity)
    : indices_(indices),
      data_(data),
      capacity_(capacity),
      tail_(indices->tail.load(std::memory_order_relaxed)) {
  if (capacity == 0 || (capacity & (capacity - 1)) != 0 || capacity < 64) {
    throw std::invalid_argument("ring capacity must be a power of two >= 64");
  }
}

RingReader::Status RingReader::tryRead(std::vector<uint8_t>& out) {
  if (corrupt_) return Status::CORRUPT;
  for (;;) {
    uint64_t head = indices_->head.load(std::memory_order_acquire);
    uint64_t available = head - tail_;
    if (available == 0) return Status::EMPTY;
    if (available > capacity_ || available % 8 != 0 || available < HEADER) {
      corrupt_ = true;
      return Status::CORRUPT;
    }
    uint64_t offset = tail_ & (capacity_ - 1);
    uint32_t length;
    std::memcpy(&length, data_ + offset, sizeof(length));
    if (length == RING_WRAP_MARKER) {
      uint64_t skip = capacity_ - offset;
      if (skip > available) {
        corrupt_ = true;
        return Status::CORRUPT;
      }
      tail_ += skip;
      indices_->tail.store(tail_, std::memory_order_release);
      continue;
    }
    uint64_t frame = HEADER + align8(length);
    if (frame > available || frame > capacity_ - offset) {
      corrupt_ = true;
      return Status::CORRUPT;
    }
    out.assign(data_ + offset + HEADER, data_ + offset + HEADER + length);
    tail_ += frame;
    indices_->tail.store(tail_, std::memory_order_release);
    return Status::MESSAGE;
  }
}

}  // namespace cellvisor
