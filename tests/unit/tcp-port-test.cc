// The free-port search behind vmmd's graphics_port default.
#include "base/tcp-port.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/unique-fd.h"

namespace cellvisor {
namespace {

TEST(TcpPort, SkipsABoundPortAndRefusesANonAddress) {
  auto first = firstFreeTcpPort("127.0.0.1", 5930, 5960);
  ASSERT_TRUE(first.has_value());
  UniqueFd taken(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(*first);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(taken.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  auto next = firstFreeTcpPort("127.0.0.1", *first, 5960);
  ASSERT_TRUE(next.has_value());
  EXPECT_GT(*next, *first);
  EXPECT_FALSE(firstFreeTcpPort("127.0.0.1", *first, static_cast<uint16_t>(*first + 1)).has_value());
  EXPECT_FALSE(firstFreeTcpPort("not-an-address", 5900, 6000).has_value());
  EXPECT_TRUE(firstFreeTcpPort("::1", 5900, 6000).has_value() || ::access("/proc/net/if_inet6", F_OK) != 0);
}

}  // namespace
}  // namespace cellvisor
