#include "base/tcp-port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "base/unique-fd.h"

namespace cellvisor {

std::optional<uint16_t> firstFreeTcpPort(const std::string& address, uint16_t from, uint16_t to) {
  for (uint32_t port = from; port < to; ++port) {
    sockaddr_storage socketAddress{};
    socklen_t length = 0;
    int family = AF_INET;
    if (auto* v4 = reinterpret_cast<sockaddr_in*>(&socketAddress);
        ::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(static_cast<uint16_t>(port));
      length = sizeof(*v4);
    } else {
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&socketAddress);
      if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) != 1) return std::nullopt;
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(static_cast<uint16_t>(port));
      length = sizeof(*v6);
      family = AF_INET6;
    }
    UniqueFd probe(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::bind(probe.get(), reinterpret_cast<sockaddr*>(&socketAddress), length) == 0)
      return static_cast<uint16_t>(port);
  }
  return std::nullopt;
}

}  // namespace cellvisor
