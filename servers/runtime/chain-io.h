// Moving bytes between a descriptor chain's guest buffers and the host:
// every device model needs it (a block request's header, a network frame).
// The chain's buffers were bounds-checked when the chain was read, so these
// only ever touch guest RAM the chain names.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <vector>

#include "servers/runtime/virtqueue.h"

namespace cellvisor {

// Copies `out.size()` bytes starting `skip` bytes into the chain's readable
// part. False if the chain holds fewer.
bool gather(const DescriptorChain& chain, uint64_t skip, std::span<uint8_t> out);
// Copies `data` into the chain's writable part starting `skip` bytes in.
// False (and nothing written past the end) if it does not fit.
bool scatter(const DescriptorChain& chain, uint64_t skip, std::span<const uint8_t> data);
// Appends iovecs for `length` bytes of `buffers` starting `skip` bytes in.
void collect(const std::vector<std::span<uint8_t>>& buffers, uint64_t skip, uint64_t length,
             std::vector<iovec>& iov);

}  // namespace cellvisor
