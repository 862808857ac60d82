// A fuzz target's input read front to back: bytes, little-endian numbers;
// it runs dry as zeros, so every input is a whole script.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cellvisor::fuzzing {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t byte() {
    if (size_ == 0) return 0;
    --size_;
    return *data_++;
  }
  // `count` bytes (at most 8), little-endian.
  uint64_t bytes(unsigned count) {
    uint64_t value = 0;
    for (unsigned i = 0; i < count; ++i) value |= uint64_t{byte()} << (8 * i);
    return value;
  }
  uint32_t dword() { return static_cast<uint32_t>(bytes(4)); }
  size_t left() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  const uint8_t* data_;
  size_t size_;
};

}  // namespace cellvisor::fuzzing
