// One Cap'n Proto message plus file descriptors over a SOCK_SEQPACKET unix
// socket (SCM_RIGHTS): how a device server receives its resources.
#pragma once

#include <capnp/message.h>
#include <sys/socket.h>

#include <vector>

#include "base/unique-fd.h"
#include "proto/message-channel.h"

namespace cellvisor {

void sendWithFds(int socket, capnp::MessageBuilder& message, const std::vector<int>& fds);

// Takes ownership of every descriptor a received message carried
// (SCM_RIGHTS), appending them to `fds`: call it before anything can fail,
// so none leaks.
void adoptPassedFds(msghdr& header, std::vector<UniqueFd>& fds);

struct MessageWithFds {
  std::vector<uint8_t> bytes;
  std::vector<UniqueFd> fds;
};

// Throws ProtocolError when the peer sent something malformed (truncated
// message or descriptors), std::system_error when the socket fails.
MessageWithFds receiveWithFds(int socket);

}  // namespace cellvisor
