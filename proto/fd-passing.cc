#include "proto/fd-passing.h"

#include <capnp/serialize.h>
#include <sys/socket.h>

#include <cstring>

#include "base/system-error.h"

namespace cellvisor {
namespace {

constexpr size_t MAX_FDS = 250;  // Below the kernel's SCM_MAX_FD.
constexpr size_t MAX_BYTES = 64 * 1024;

}  // namespace

void sendWithFds(int socket, capnp::MessageBuilder& message, const std::vector<int>& fds) {
  if (fds.size() > MAX_FDS) throw std::length_error("too many descriptors for one message");
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  iovec data{words.begin(), words.size() * sizeof(capnp::word)};
  std::vector<uint8_t> control(CMSG_SPACE(sizeof(int) * fds.size()));
  msghdr header{};
  header.msg_iov = &data;
  header.msg_iovlen = 1;
  if (!fds.empty()) {
    header.msg_control = control.data();
    header.msg_controllen = control.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&header);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t sent = retryOnEintr([&] { return ::sendmsg(socket, &header, MSG_NOSIGNAL); });
  if (sent < 0) throwSystemError("sendmsg bootstrap");
}

void adoptPassedFds(msghdr& header, std::vector<UniqueFd>& fds) {
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&header); cmsg != nullptr; cmsg = CMSG_NXTHDR(&header, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }
}

MessageWithFds receiveWithFds(int socket) {
  MessageWithFds result;
  result.bytes.resize(MAX_BYTES);
  std::vector<uint8_t> control(CMSG_SPACE(sizeof(int) * MAX_FDS));
  iovec data{result.bytes.data(), result.bytes.size()};
  msghdr header{};
  header.msg_iov = &data;
  header.msg_iovlen = 1;
  header.msg_control = control.data();
  header.msg_controllen = control.size();
  ssize_t received = retryOnEintr([&] { return ::recvmsg(socket, &header, MSG_CMSG_CLOEXEC); });
  if (received < 0) throwSystemError("recvmsg bootstrap");
  // Take ownership of every descriptor first, so none leaks on an error below.
  adoptPassedFds(header, result.fds);
  if (header.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
    throw ProtocolError("bootstrap message or descriptors truncated");
  if (received == 0) throw ProtocolError("bootstrap socket closed before any message");
  result.bytes.resize(static_cast<size_t>(received));
  return result;
}

}  // namespace cellvisor
