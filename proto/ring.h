// A single-producer single-consumer ring of length-framed messages in shared
// memory. The two processes sharing it do not trust each other: each keeps
// the ring's capacity privately, reads the peer's index once per operation,
// and checks every frame before using it. Nothing here allocates or locks.
//
// Frame: u32 length, payload, padding to 8 bytes. A frame never wraps; a
// length of WRAP_MARKER tells the reader to continue at the ring's start.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace cellvisor {

struct RingIndices {
  alignas(64) std::atomic<uint64_t> head;  // Bytes ever written; producer-owned.
  alignas(64) std::atomic<uint64_t> tail;  // Bytes ever consumed; consumer-owned.
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "rings need lock-free 64-bit atomics");

class RingWriter {
 public:
  // `indices` and `data` live in the shared segment; `capacity` is a power of two.
  RingWriter(RingIndices* indices, uint8_t* data, uint32_t capacity);

  // Appends one message; false when it does not fit now (back-pressure: the
  // caller waits and retries, nothing is dropped). Throws for a message that
  // could never fit.
  bool tryWrite(std::span<const uint8_t> message);
  // Largest message the ring can carry.
  uint32_t maxMessage() const { return capacity_ / 2 - 8; }

 private:
  RingIndices* indices_;
  uint8_t* data_;
  uint32_t capacity_;
  uint64_t head_;  // Our own copy: never re-read from shared memory.
};

class RingReader {
 public:
  enum class Status { MESSAGE, EMPTY, CORRUPT };

  RingReader(RingIndices* indices, uint8_t* data, uint32_t capacity);

  // Copies the next message into `out` (the ring slot is released at once, so
  // the peer cannot change bytes we are parsing). CORRUPT means the peer wrote
  // an impossible index or length: the ring is unusable from then on.
  Status tryRead(std::vector<uint8_t>& out);
  bool corrupt() const { return corrupt_; }

 private:
  RingIndices* indices_;
  uint8_t* data_;
  uint32_t capacity_;
  uint64_t tail_;
  bool corrupt_ = false;
};

constexpr uint32_t RING_WRAP_MARKER = 0xffffffff;

}  // namespace cellvisor
