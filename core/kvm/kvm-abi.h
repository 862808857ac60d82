// Variable-length KVM ioctl structures with their C layout. Linux's uapi
// headers declare the trailing arrays with __DECLARE_FLEX_ARRAY, which in C++
// adds an empty struct (1 byte) and moves the array to offset 12, so both the
// ioctl numbers (they encode sizeof) and the entry offsets come out wrong.
// These headers are 8 bytes, entries follow at offset 8, as the kernel expects.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace cellvisor::kvm_abi {

struct TableHeader {
  uint32_t count;
  uint32_t padding;
};
static_assert(sizeof(TableHeader) == 8);

constexpr unsigned long GET_SUPPORTED_CPUID = _IOWR(KVMIO, 0x05, TableHeader);
constexpr unsigned long SET_CPUID2 = _IOW(KVMIO, 0x90, TableHeader);
constexpr unsigned long SET_MSRS = _IOW(KVMIO, 0x89, TableHeader);
constexpr unsigned long SET_GSI_ROUTING = _IOW(KVMIO, 0x6a, TableHeader);

// A header followed by `entries`, in one buffer the kernel can read or fill.
template <typename Entry>
class Table {
 public:
  explicit Table(size_t capacity) : bytes_(sizeof(TableHeader) + capacity * sizeof(Entry)) {
    header().count = static_cast<uint32_t>(capacity);
  }
  explicit Table(const std::vector<Entry>& entries) : Table(entries.size()) {
    std::memcpy(bytes_.data() + sizeof(TableHeader), entries.data(), entries.size() * sizeof(Entry));
  }
  TableHeader& header() { return *reinterpret_cast<TableHeader*>(bytes_.data()); }
  void* data() { return bytes_.data(); }
  std::vector<Entry> entries() {
    std::vector<Entry> out(header().count);
    std::memcpy(out.data(), bytes_.data() + sizeof(TableHeader), out.size() * sizeof(Entry));
    return out;
  }

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace cellvisor::kvm_abi
