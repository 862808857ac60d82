#include "base/unix-socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "base/system-error.h"

namespace cellvisor {

UniqueFd listenOnUnixSocket(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path))
    throw std::invalid_argument("unix socket path too long: " + path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  UniqueFd listener(checkSyscall(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), "socket"));
  ::unlink(path.c_str());
  mode_t old = ::umask(0177);
  int bound = ::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address));
  ::umask(old);
  if (bound < 0) throwSystemError("bind " + path);
  checkSyscall(::listen(listener.get(), 1), "listen");
  return listener;
}

std::pair<UniqueFd, UniqueFd> socketPair(int type) {
  int sockets[2];
  checkSyscall(::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sockets), "socketpair");
  return {UniqueFd(sockets[0]), UniqueFd(sockets[1])};
}

}  // namespace cellvisor
