#include "core/memory/host-memory.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace cellvisor {

HostMemory parseMeminfo(const std::string& text) {
  HostMemory host;
  bool haveTotal = false;
  bool haveSwap = false;
  bool haveAvailable = false;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string name;
    uint64_t kib = 0;
    if (!(fields >> name >> kib)) continue;
    if (name == "MemTotal:") {
      host.total = kib << 10;
      haveTotal = true;
    } else if (name == "SwapTotal:") {
      host.swap = kib << 10;
      haveSwap = true;
    } else if (name == "MemAvailable:") {
      host.available = kib << 10;
      haveAvailable = true;
    }
  }
  if (!haveTotal || !haveSwap || !haveAvailable) {
    throw std::runtime_error("/proc/meminfo lacks MemTotal, SwapTotal or MemAvailable");
  }
  return host;
}

HostMemory readHostMemory() {
  std::ifstream file("/proc/meminfo");
  std::stringstream text;
  text << file.rdbuf();
  return parseMeminfo(text.str());
}

std::string formatBytes(uint64_t bytes) {
  static constexpr const char* UNITS[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t unit = 0;
  uint64_t whole = bytes;
  while (whole >= 1024 && unit + 1 < std::size(UNITS)) {
    whole >>= 10;
    ++unit;
  }
  if (unit == 0 || bytes % (1ull << (10 * unit)) == 0) return fmt::format("{} {}", whole, UNITS[unit]);
  return fmt::format("{:.1f} {}", static_cast<double>(bytes) / static_cast<double>(1ull << (10 * unit)),
                     UNITS[unit]);
}

void wireMemory(void* data, uint64_t size) {
  // The system call itself: sanitizer runtimes turn mlock() into a no-op.
  if (::syscall(SYS_mlock, data, size) == 0) return;
  int error = errno;
  rlimit limit{};
  ::getrlimit(RLIMIT_MEMLOCK, &limit);
  std::string allowed = limit.rlim_cur == RLIM_INFINITY ? "unlimited" : formatBytes(limit.rlim_cur);
  if (error == ENOMEM || error == EPERM || error == EAGAIN) {
    throw std::runtime_error(
        fmt::format("-S (memory.wired): cannot wire {} of guest memory: {} (RLIMIT_MEMLOCK is {}; raise it "
                    "with ulimit -l "
                    "or run with CAP_IPC_LOCK)",
                    formatBytes(size), std::strerror(error), allowed));
  }
  throw std::runtime_error(
      fmt::format("-S (memory.wired): mlock of guest memory failed: {}", std::strerror(error)));
}

void excludeFromCoreDumps(void* data, uint64_t size) {
  if (::madvise(data, size, MADV_DONTDUMP) != 0) {
    throw std::runtime_error(fmt::format("madvise(MADV_DONTDUMP) on guest memory: {}", std::strerror(errno)));
  }
}

std::string checkGuestMemory(uint64_t guestBytes, const HostMemory& host, bool overcommit) {
  uint64_t backing = host.total + host.swap;
  if (guestBytes > backing && !overcommit) {
    throw std::invalid_argument(
        fmt::format("{} of guest memory is more than this host's RAM and swap together ({}); "
                    "set memory.overcommit=true (-o memory.overcommit=true) to run it anyway",
                    formatBytes(guestBytes), formatBytes(backing)));
  }
  if (guestBytes > host.available) {
    return fmt::format(
        "{} of guest memory is more than this host has available now ({}); the guest may swap or "
        "be killed when it uses it all",
        formatBytes(guestBytes), formatBytes(host.available));
  }
  return "";
}

}  // namespace cellvisor
