#include "cli/vmmd-socket.h"

#include <fmt/format.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cellvisor::cli {
namespace {

std::string userName(uid_t uid) {
  passwd* entry = ::getpwuid(uid);
  return entry != nullptr ? fmt::format("{} (uid {})", entry->pw_name, uid) : fmt::format("uid {}", uid);
}

constexpr const char* HOW_TO_START =
    "start it with `systemctl start vmmd`, or `vmmd -d DATASTORE -S SOCKET`; "
    "-S or CELLVISOR_SOCKET point vmctl at another socket";

}  // namespace

std::string vmmdUnreachableReason(const std::string& socketPath) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socketPath.size() >= sizeof(address.sun_path)) return "the socket path is too long: " + socketPath;
  std::memcpy(address.sun_path, socketPath.c_str(), socketPath.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fmt::format("cannot make a socket: {}", std::strerror(errno));
  int connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  int error = errno;
  ::close(fd);
  if (connected == 0) return "";
  struct stat st {};
  switch (error) {
    case ENOENT:
      return fmt::format("vmmd is not running: there is no control socket at {} ({})", socketPath,
                         HOW_TO_START);
    case ECONNREFUSED:
      return fmt::format(
          "vmmd is not running: nothing listens on {} (a socket left by a vmmd that ended; {})", socketPath,
          HOW_TO_START);
    case EACCES:
    case EPERM:
      if (::stat(socketPath.c_str(), &st) == 0 && st.st_uid != ::geteuid()) {
        return fmt::format(
            "{} belongs to {}: that vmmd serves its owner only (you are {}); run vmctl as its owner, "
            "or start your own vmmd with another socket (-S)",
            socketPath, userName(st.st_uid), userName(::geteuid()));
      }
      return fmt::format("no permission to reach {} (or a directory above it)", socketPath);
    case ENOTSOCK:
      return fmt::format("{} is not a socket: is -S right?", socketPath);
    default:
      return fmt::format("cannot reach vmmd at {}: {}", socketPath, std::strerror(error));
  }
}

}  // namespace cellvisor::cli
