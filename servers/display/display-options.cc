#include "servers/display/display-options.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "servers/runtime/slot-options.h"

namespace cellvisor {
namespace {

constexpr const char* DEVICE = "fbuf";

// "ADDRESS:PORT", "[ADDRESS]:PORT" or "PORT".
void parseEndpoint(const std::string& text, DisplayOptions& options) {
  std::string port = text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw std::invalid_argument(std::string(DEVICE) + ": tcp: expected [IPv6]:PORT, got '" + text + "'");
    options.address = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else if (auto colon = text.rfind(':'); colon != std::string::npos) {
    options.address = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  in6_addr v6{};
  in_addr v4{};
  if (::inet_pton(AF_INET, options.address.c_str(), &v4) != 1 &&
      ::inet_pton(AF_INET6, options.address.c_str(), &v6) != 1) {
    throw std::invalid_argument(std::string(DEVICE) + ": tcp: '" + options.address +
                                "' is not an IP address");
  }
  options.port = slotOptionNumber<uint16_t>(DEVICE, "tcp port", port);
}

}  // namespace

uint64_t DisplayOptions::vramBytes() const {
  return std::bit_ceil(std::max<uint64_t>(16ull << 20, uint64_t{width} * height * 4 * 2));
}

DisplayOptions parseDisplayOptions(const std::string& text) {
  DisplayOptions options;
  if (text.empty()) return options;
  for (const auto& [key, value] : splitSlotOptions("," + text).settings) {
    if (key == "tcp" || key == "rfb") {
      parseEndpoint(value, options);
    } else if (key == "w") {
      options.width = slotOptionNumber<uint32_t>(DEVICE, key, value);
    } else if (key == "h") {
      options.height = slotOptionNumber<uint32_t>(DEVICE, key, value);
    } else if (key == "wait") {
      if (!value.empty()) throw std::invalid_argument(std::string(DEVICE) + ": wait takes no value");
      options.wait = true;
    } else if (key == "password") {
      if (value.empty()) throw std::invalid_argument(std::string(DEVICE) + ": password: empty");
      options.password = value;
    } else if (key == "rom") {
      if (value.empty()) throw std::invalid_argument(std::string(DEVICE) + ": rom: empty (rom=off for none)");
      options.rom = value == "off" ? "" : value;
    } else if (key == "edid") {
      if (value != "on" && value != "off")
        throw std::invalid_argument(std::string(DEVICE) + ": edid: expected on or off");
      options.edid = value == "on";
    } else if (key == "vga") {
      if (value != "on" && value != "io" && value != "off")
        throw std::invalid_argument(std::string(DEVICE) + ": vga: expected on, io or off");
    } else if (key.empty()) {
      throw std::invalid_argument(std::string(DEVICE) + ": empty option");
    } else {
      throw std::invalid_argument(std::string(DEVICE) + ": unknown option '" + key + "'");
    }
  }
  if (options.width < DisplayOptions::MIN_WIDTH || options.width > DisplayOptions::MAX_WIDTH ||
      options.height < DisplayOptions::MIN_HEIGHT || options.height > DisplayOptions::MAX_HEIGHT) {
    throw std::invalid_argument(fmt::format("{}: {}x{}: the resolution must be from {}x{} to {}x{}", DEVICE,
                                            options.width, options.height, DisplayOptions::MIN_WIDTH,
                                            DisplayOptions::MIN_HEIGHT, DisplayOptions::MAX_WIDTH,
                                            DisplayOptions::MAX_HEIGHT));
  }
  return options;
}

UniqueFd openVncListener(const DisplayOptions& options, const std::string& where) {
  auto fail = [&](const std::string& what) {
    int error = errno;
    throw std::system_error(error, std::generic_category(),
                            fmt::format("{}: {} {}:{}", where, what, options.address, options.port));
  };
  sockaddr_storage address{};
  socklen_t length = 0;
  int family = AF_INET;
  if (auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
      ::inet_pton(AF_INET, options.address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(options.port);
    length = sizeof(*v4);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
    ::inet_pton(AF_INET6, options.address.c_str(), &v6->sin6_addr);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(options.port);
    length = sizeof(*v6);
    family = AF_INET6;
  }
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) fail("socket for");
  int on = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) fail("cannot listen on");
  if (::listen(fd.get(), 16) != 0) fail("cannot listen on");
  return fd;
}

UniqueFd openDisplayRom(const DisplayOptions& options, const std::string& where) {
  if (options.rom.empty()) return {};
  UniqueFd fd(::open(options.rom.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    // The default is a convenience: without SeaBIOS's package there is none.
    if (errno == ENOENT && options.rom == DisplayOptions::DEFAULT_ROM) return {};
    throw std::system_error(errno, std::generic_category(), where + ": rom: " + options.rom);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 512 || st.st_size > (1 << 20)) {
    throw std::invalid_argument(where + ": rom: " + options.rom + ": not an option ROM (512 bytes to 1 MiB)");
  }
  return fd;
}

uint64_t romWindowBytes(uint64_t romFileBytes) {
  return std::bit_ceil(std::max<uint64_t>(romFileBytes, 4096));
}

}  // namespace cellvisor
