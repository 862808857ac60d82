#include "servers/runtime/chain-io.h"

#include <algorithm>
#include <cstring>

namespace cellvisor {

bool gather(const DescriptorChain& chain, uint64_t skip, std::span<uint8_t> out) {
  size_t done = 0;
  for (auto buffer : chain.readable) {
    if (done == out.size()) break;
    if (skip >= buffer.size()) {
      skip -= buffer.size();
      continue;
    }
    size_t take = std::min(buffer.size() - skip, out.size() - done);
    std::memcpy(out.data() + done, buffer.data() + skip, take);
    done += take;
    skip = 0;
  }
  return done == out.size();
}

bool scatter(const DescriptorChain& chain, uint64_t skip, std::span<const uint8_t> data) {
  if (skip > chain.writableBytes || data.size() > chain.writableBytes - skip) return false;
  size_t done = 0;
  for (auto buffer : chain.writable) {
    if (done == data.size()) break;
    if (skip >= buffer.size()) {
      skip -= buffer.size();
      continue;
    }
    size_t take = std::min(buffer.size() - skip, data.size() - done);
    std::memcpy(buffer.data() + skip, data.data() + done, take);
    done += take;
    skip = 0;
  }
  return done == data.size();
}

void collect(const std::vector<std::span<uint8_t>>& buffers, uint64_t skip, uint64_t length,
             std::vector<iovec>& iov) {
  for (auto buffer : buffers) {
    if (length == 0) return;
    if (skip >= buffer.size()) {
      skip -= buffer.size();
      continue;
    }
    size_t take = static_cast<size_t>(std::min<uint64_t>(buffer.size() - skip, length));
    if (take > 0) iov.push_back({buffer.data() + skip, take});
    length -= take;
    skip = 0;
  }
}

}  // namespace cellvisor
