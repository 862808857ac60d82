#include "servers/nvme/data-pointer.h"

#include <algorithm>
#include <cstring>

#include "base/guest-memory.h"

namespace cellvisor::nvme {
namespace {

constexpr uint8_t PSDT_PRP = 0;
constexpr uint8_t SGL_DATA_BLOCK = 0x0;
constexpr uint8_t SGL_BIT_BUCKET = 0x1;
constexpr uint8_t SGL_SEGMENT = 0x2;
constexpr uint8_t SGL_LAST_SEGMENT = 0x3;

struct SglDescriptor {
  uint64_t address;
  uint32_t length;
  uint8_t reserved[3];
  uint8_t identifier;  // 7:4 type, 3:0 subtype (0: address).
};
static_assert(sizeof(SglDescriptor) == 16);

class Mapper {
 public:
  Mapper(const GuestMemory& memory, uint64_t length, bool toHost, std::span<uint8_t> bucket,
         std::vector<iovec>& iov)
      : memory_(memory), wanted_(length), toHost_(toHost), bucket_(bucket), iov_(iov) {}

  // Adds guest bytes; false (with status_ set) when they are not RAM.
  bool add(uint64_t address, uint64_t length) {
    length = std::min(length, wanted_ - mapped_);
    if (length == 0) return true;
    uint8_t* host = memory_.translate(address, length);
    if (host == nullptr) return fail(DATA_TRANSFER_ERROR);
    append(host, length);
    return status_ == SUCCESS;
  }
  bool addBucket(uint64_t length) {
    if (!toHost_ || bucket_.empty()) return fail(SGL_TYPE_INVALID);
    length = std::min(length, wanted_ - mapped_);
    while (length > 0) {
      uint64_t piece = std::min<uint64_t>(length, bucket_.size());
      if (iov_.size() >= MAX_SEGMENTS) return fail(SGL_SEGMENT_INVALID);
      iov_.push_back({bucket_.data(), piece});
      mapped_ += piece;
      length -= piece;
    }
    return true;
  }
  bool done() const { return mapped_ == wanted_; }
  bool fail(uint16_t status) {
    if (status_ == SUCCESS) status_ = status;
    return false;
  }
  uint16_t status() const { return status_; }
  uint64_t remaining() const { return wanted_ - mapped_; }

 private:
  void append(uint8_t* host, uint64_t length) {
    if (!iov_.empty()) {
      iovec& last = iov_.back();
      if (static_cast<uint8_t*>(last.iov_base) + last.iov_len == host) {
        last.iov_len += length;
        mapped_ += length;
        return;
      }
    }
    if (iov_.size() >= MAX_SEGMENTS) {
      fail(SGL_SEGMENT_INVALID);
      return;
    }
    iov_.push_back({host, length});
    mapped_ += length;
  }

  const GuestMemory& memory_;
  uint64_t wanted_;
  uint64_t mapped_ = 0;
  bool toHost_;
  std::span<uint8_t> bucket_;
  std::vector<iovec>& iov_;
  uint16_t status_ = SUCCESS;
};

uint16_t mapPrps(const GuestMemory& memory, const Command& command, Mapper& mapper) {
  uint64_t prp1 = command.dptr[0];
  uint64_t prp2 = command.dptr[1];
  if (prp1 % 4 != 0) return PRP_OFFSET_INVALID;
  if (!mapper.add(prp1, PAGE - prp1 % PAGE)) return mapper.status();
  if (mapper.done()) return SUCCESS;
  if (mapper.remaining() <= PAGE) {
    if (prp2 % PAGE != 0) return PRP_OFFSET_INVALID;
    return mapper.add(prp2, mapper.remaining()) ? SUCCESS : mapper.status();
  }
  // PRP2 points to a list; its last entry in each page points to the next
  // page of the list while more data remains (4.3).
  if (prp2 % 8 != 0) return PRP_OFFSET_INVALID;
  uint64_t list = prp2;
  for (size_t pages = 0; !mapper.done(); ++pages) {
    if (pages > MAX_SEGMENTS) return PRP_OFFSET_INVALID;
    uint64_t entries = (PAGE - list % PAGE) / 8;
    const uint8_t* at = memory.translate(list, entries * 8);
    if (at == nullptr) return DATA_TRANSFER_ERROR;
    for (uint64_t i = 0; i < entries && !mapper.done(); ++i) {
      uint64_t entry;
      std::memcpy(&entry, at + 8 * i, 8);  // Copied once, then checked.
      if (i == entries - 1 && mapper.remaining() > PAGE) {
        if (entry % PAGE != 0) return PRP_OFFSET_INVALID;
        list = entry;
        break;
      }
      if (entry % PAGE != 0) return PRP_OFFSET_INVALID;
      if (!mapper.add(entry, PAGE)) return mapper.status();
    }
  }
  return SUCCESS;
}

uint16_t mapSgls(const GuestMemory& memory, const Command& command, Mapper& mapper) {
  SglDescriptor descriptor;
  std::memcpy(&descriptor, command.dptr, sizeof(descriptor));
  size_t seen = 0;
  bool last = false;  // Inside a last segment: no segment descriptor may follow.
  for (;;) {
    uint8_t type = descriptor.identifier >> 4;
    if ((descriptor.identifier & 0xf) != 0) return SGL_TYPE_INVALID;
    if (type == SGL_DATA_BLOCK) {
      if (!mapper.add(descriptor.address, descriptor.length)) return mapper.status();
      return mapper.done() ? SUCCESS : SGL_DATA_LENGTH_INVALID;
    }
    if (type == SGL_BIT_BUCKET) {
      if (!mapper.addBucket(descriptor.length)) return mapper.status();
      return mapper.done() ? SUCCESS : SGL_DATA_LENGTH_INVALID;
    }
    if ((type != SGL_SEGMENT && type != SGL_LAST_SEGMENT) || last) return SGL_TYPE_INVALID;
    // A segment: a list of descriptors, the last of which may point to the
    // next segment (only in a segment, not a last segment).
    uint32_t count = descriptor.length / sizeof(SglDescriptor);
    if (count == 0 || descriptor.length % sizeof(SglDescriptor) != 0) return SGL_SEGMENT_INVALID;
    seen += count;
    if (seen > MAX_SEGMENTS) return SGL_SEGMENT_INVALID;
    const uint8_t* list = memory.translate(descriptor.address, descriptor.length);
    if (list == nullptr) return DATA_TRANSFER_ERROR;
    last = type == SGL_LAST_SEGMENT;
    SglDescriptor next{};
    bool chained = false;
    for (uint32_t i = 0; i < count; ++i) {
      SglDescriptor entry;
      std::memcpy(&entry, list + i * sizeof(entry), sizeof(entry));
      uint8_t entryType = entry.identifier >> 4;
      if ((entry.identifier & 0xf) != 0) return SGL_TYPE_INVALID;
      if (entryType == SGL_SEGMENT || entryType == SGL_LAST_SEGMENT) {
        if (last || i != count - 1) return SGL_TYPE_INVALID;
        next = entry;
        chained = true;
        break;
      }
      if (entryType == SGL_DATA_BLOCK) {
        if (!mapper.add(entry.address, entry.length)) return mapper.status();
      } else if (entryType == SGL_BIT_BUCKET) {
        if (!mapper.addBucket(entry.length)) return mapper.status();
      } else {
        return SGL_TYPE_INVALID;
      }
    }
    if (!chained) return mapper.done() ? SUCCESS : SGL_DATA_LENGTH_INVALID;
    descriptor = next;
  }
}

uint16_t map(const GuestMemory& memory, const Command& command, uint64_t length, bool toHost,
             std::span<uint8_t> bucket, std::vector<iovec>& iov) {
  iov.clear();
  if (length == 0) return SUCCESS;
  Mapper mapper(memory, length, toHost, bucket, iov);
  uint8_t psdt = command.flags >> 6;
  uint16_t result = psdt == PSDT_PRP ? mapPrps(memory, command, mapper)
                    : psdt <= 2      ? mapSgls(memory, command, mapper)
                                     : INVALID_FIELD;
  if (result == SUCCESS && mapper.status() != SUCCESS) result = mapper.status();
  if (result == SUCCESS && !mapper.done()) result = SGL_DATA_LENGTH_INVALID;
  if (result != SUCCESS) iov.clear();
  return result;
}

uint16_t copy(const GuestMemory& memory, const Command& command, uint8_t* data, size_t length, bool toGuest) {
  std::vector<iovec> iov;
  uint16_t result = map(memory, command, length, toGuest, {}, iov);
  if (result != SUCCESS) return result;
  size_t at = 0;
  for (const iovec& piece : iov) {
    if (toGuest) {
      std::memcpy(piece.iov_base, data + at, piece.iov_len);
    } else {
      std::memcpy(data + at, piece.iov_base, piece.iov_len);
    }
    at += piece.iov_len;
  }
  return SUCCESS;
}

}  // namespace

uint16_t mapDataPointer(const GuestMemory& memory, const Command& command, uint64_t length, bool toHost,
                        std::span<uint8_t> bucket, std::vector<iovec>& iov) {
  return map(memory, command, length, toHost, bucket, iov);
}

uint16_t copyToGuest(const GuestMemory& memory, const Command& command, std::span<const uint8_t> data) {
  return copy(memory, command, const_cast<uint8_t*>(data.data()), data.size(), true);
}

uint16_t copyFromGuest(const GuestMemory& memory, const Command& command, std::span<uint8_t> data) {
  return copy(memory, command, data.data(), data.size(), false);
}

}  // namespace cellvisor::nvme
