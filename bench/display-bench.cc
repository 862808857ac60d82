// display-bench: full-screen updates at 1920x1080 through one VNC client
// (libvncclient), cellvisor's display server beside QEMU's VNC server
// showing the same test guest in the same run. The guest
// (test=display-animation) fills the screen with one colour per frame and
// says so on its console once the frame is written.
//
// For each: frames the guest wrote per second, frames the client saw per
// second, the latency from the guest's console line to the client holding
// that frame's last pixel (median, p90), and the memory (PSS) of what
// serves the display: our display server, QEMU's whole process. Then, for
// ours alone, the server's own ceiling: the benchmark writes whole frames
// into VRAM from the host, each as soon as the client has the last.
//
//   display-bench [--seconds N] VMM_CORE GUEST_ELF [QEMU]
//
// QEMU runs with KVM, -M pc and its bochs-display, the guest repackaged as
// a 32-bit ELF (objcopy) for its PVH loader.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <rfb/rfbclient.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "base/tcp-port.h"
#include "bench/process-runs.h"

extern char** environ;

namespace cellvisor::bench {
namespace {

constexpr int WIDTH = 1920, HEIGHT = 1080;

// The guest's colour for frame n (tests/guest/display.c).
uint32_t frameColour(uint32_t frame) {
  uint32_t level = (frame * 0x3b) & 0xff;
  return level | level << 8 | level << 16;
}

// A VMM with its console (stdout) and log (stderr) read by a thread.
class Vmm {
 public:
  explicit Vmm(const std::vector<std::string>& argv) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0)
      throw std::runtime_error("cannot start " + argv[0]);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    ::close(err[1]);
    reader_ = std::thread([this, outFd = out[0], errFd = err[0]] { read(outFd, errFd); });
  }
  ~Vmm() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    reader_.join();
  }
  pid_t pid() const { return pid_; }
  // Waits for `pattern` in the console or log; its first group, or "".
  std::string waitFor(const std::regex& pattern, int seconds) {
    for (int i = 0; i < seconds * 20; ++i) {
      {
        std::lock_guard lock(mutex_);
        std::smatch match;
        if (std::regex_search(text_, match, pattern))
          return match.size() > 1 ? match[1].str() : match[0].str();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "";
  }
  // (frame, colour, when its line came), in order.
  std::vector<std::pair<uint32_t, int64_t>> frames() {
    std::lock_guard lock(mutex_);
    return frames_;
  }

 private:
  void read(int outFd, int errFd) {
    pollfd fds[2] = {{outFd, POLLIN, 0}, {errFd, POLLIN, 0}};
    std::string line;
    while (::poll(fds, 2, -1) > 0) {
      bool open = false;
      for (auto& fd : fds) {
        if (fd.fd < 0 || !(fd.revents & (POLLIN | POLLHUP))) {
          if (fd.fd >= 0) open = true;
          continue;
        }
        char buffer[4096];
        ssize_t count = ::read(fd.fd, buffer, sizeof(buffer));
        if (count <= 0) {
          ::close(fd.fd);
          fd.fd = -1;
          continue;
        }
        open = true;
        int64_t now = monotonicNs();
        std::lock_guard lock(mutex_);
        text_.append(buffer, static_cast<size_t>(count));
        if (&fd != &fds[0]) continue;
        line.append(buffer, static_cast<size_t>(count));
        for (size_t end; (end = line.find('\n')) != std::string::npos; line.erase(0, end + 1)) {
          unsigned frame;
          if (std::sscanf(line.c_str(), "frame %u", &frame) == 1) frames_.emplace_back(frame, now);
        }
      }
      if (!open) break;
    }
  }

  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::string text_;
  std::vector<std::pair<uint32_t, int64_t>> frames_;
};

void quiet(const char*, ...) {}

// The client: the colour of the screen's last pixel whenever it changes.
class Watcher {
 public:
  explicit Watcher(uint16_t port) {
    client_ = rfbGetClient(8, 3, 4);
    client_->serverHost = strdup("127.0.0.1");
    client_->serverPort = port;
    client_->canHandleNewFBSize = TRUE;
    client_->appData.encodingsString = "tight zrle hextile raw";
    client_->appData.enableJPEG = FALSE;
    rfbClientSetClientData(client_, nullptr, this);
    client_->FinishedFrameBufferUpdate = [](rfbClient* client) {
      auto* self = static_cast<Watcher*>(rfbClientGetClientData(client, nullptr));
      if (client->width != WIDTH || client->height != HEIGHT) return;
      const uint8_t* last = client->frameBuffer + 4 * (size_t(WIDTH) * HEIGHT - 1);
      uint32_t colour = uint32_t{last[0]} << 16 | uint32_t{last[1]} << 8 | last[2];
      if (self->changes.empty() || self->changes.back().first != colour)
        self->changes.emplace_back(colour, monotonicNs());
    };
    int argc = 1;
    char name[] = "display-bench";
    char* argv[] = {name, nullptr};
    rfbClientLog = rfbClientErr = quiet;
    if (!rfbInitClient(client_, &argc, argv)) {
      client_ = nullptr;
      throw std::runtime_error("no VNC connection on port " + std::to_string(port));
    }
  }
  ~Watcher() {
    if (client_) rfbClientCleanup(client_);
  }
  // Serves the connection until `deadline` or until `until` says stop.
  void run(int64_t deadline, const std::function<bool()>& until = {}) {
    while (monotonicNs() < deadline && !(until && until())) {
      int ready = WaitForMessage(client_, 2000);
      if (ready < 0 || (ready > 0 && !HandleRFBServerMessage(client_))) break;
    }
  }
  std::vector<std::pair<uint32_t, int64_t>> changes;  // (colour, when seen)

 private:
  rfbClient* client_ = nullptr;
};

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(p * values.size()))];
}

long pssKiB(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/smaps_rollup");
  for (std::string line; std::getline(file, line);) {
    if (line.rfind("Pss:", 0) == 0) return std::atol(line.c_str() + 4);
  }
  return 0;
}

// Our display server: the descendant of `root` running display-server.
pid_t displayServerOf(pid_t root) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      pid_t pid = std::atoi(entry.path().filename().c_str());
      if (pid <= 0) continue;
      std::error_code error;
      auto exe = std::filesystem::read_symlink(entry.path() / "exe", error);
      if (error || exe.filename() != "display-server") continue;
      for (pid_t up = pid; up > 1;) {
        std::ifstream stat("/proc/" + std::to_string(up) + "/stat");
        std::string text((std::istreambuf_iterator<char>(stat)), {});
        auto close = text.rfind(')');
        if (close == std::string::npos) break;
        up = std::atoi(text.c_str() + close + 4);
        if (up == root) return pid;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return 0;
}

struct Result {
  double guestFps = 0, seenFps = 0, median = 0, p90 = 0;
  size_t matched = 0;
  long pss = 0;
};

// Runs the animation for `seconds` and matches what the client saw with
// what the guest wrote.
Result measure(Vmm& vmm, uint16_t port, double seconds, pid_t pssOf) {
  Watcher watcher(port);
  int64_t start = monotonicNs();
  watcher.run(start + static_cast<int64_t>(seconds * 1e9));
  auto written = vmm.frames();
  Result result;
  std::vector<double> latencies;
  for (const auto& [colour, seen] : watcher.changes) {
    // The written frame of that colour nearest in time (colours repeat
    // every 256 frames, far apart at these rates).
    const std::pair<uint32_t, int64_t>* best = nullptr;
    for (const auto& frame : written) {
      if (frameColour(frame.first) != colour) continue;
      if (!best || std::llabs(frame.second - seen) < std::llabs(best->second - seen)) best = &frame;
    }
    if (best && best->second >= start) latencies.push_back((seen - best->second) / 1e6);
  }
  size_t inWindow =
      std::count_if(written.begin(), written.end(), [&](const auto& f) { return f.second >= start; });
  result.guestFps = inWindow / seconds;
  result.seenFps = latencies.size() / seconds;
  result.matched = latencies.size();
  result.median = percentile(latencies, 0.5);
  result.p90 = percentile(latencies, 0.9);
  result.pss = pssKiB(pssOf);
  return result;
}

// The host writes frames into our display server's VRAM (its BAR memory,
// opened through /proc), each once the client holds the one before.
Result ceiling(const std::string& core, const std::string& guest, double seconds) {
  Vmm vmm({core, "-m", "128M", "-l", "com1,stdio", "-s", "29,fbuf,tcp=127.0.0.1:0,w=1920,h=1080", "--kernel",
           guest, "--cmdline", "test=display-animation frames=off", "bench"});
  std::string port = vmm.waitFor(std::regex("VNC server on 127\\.0\\.0\\.1 port ([0-9]+)"), 30);
  if (port.empty() || vmm.waitFor(std::regex("1920x1080x32 set"), 60).empty())
    throw std::runtime_error("our guest did not set its mode");
  pid_t server = displayServerOf(vmm.pid());
  std::string vramPath;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(server) + "/fd")) {
    std::error_code error;
    if (std::filesystem::read_symlink(entry.path(), error).string().find("bar-memory") != std::string::npos)
      vramPath = entry.path();
  }
  int fd = ::open(vramPath.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open the display's VRAM");
  size_t bytes = size_t(WIDTH) * HEIGHT * 4;
  auto* vram = static_cast<uint32_t*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ::close(fd);
  Watcher watcher(static_cast<uint16_t>(std::stoi(port)));
  std::vector<double> latencies;
  int64_t end = monotonicNs() + static_cast<int64_t>(seconds * 1e9);
  for (uint32_t frame = 1; monotonicNs() < end; ++frame) {
    uint32_t colour = frameColour(frame) | 0x010000 * (frame & 1);  // never two alike in a row
    std::fill(vram, vram + size_t(WIDTH) * HEIGHT, colour);
    int64_t written = monotonicNs();
    watcher.run(end, [&] { return !watcher.changes.empty() && watcher.changes.back().first == colour; });
    if (!watcher.changes.empty() && watcher.changes.back().first == colour)
      latencies.push_back((watcher.changes.back().second - written) / 1e6);
  }
  ::munmap(vram, bytes);
  Result result;
  result.seenFps = latencies.size() / seconds;
  result.matched = latencies.size();
  result.median = percentile(latencies, 0.5);
  result.p90 = percentile(latencies, 0.9);
  result.pss = pssKiB(server);
  return result;
}

void print(const char* what, const Result& r) {
  std::printf("| %s | %.1f | %.1f | %zu | %.1f | %.1f | %.1f |\n", what, r.guestFps, r.seenFps, r.matched,
              r.median, r.p90, r.pss / 1024.0);
}

}  // namespace
}  // namespace cellvisor::bench

int main(int argc, char** argv) {
  using namespace cellvisor::bench;
  double seconds = 20;
  int first = 1;
  if (argc > 2 && std::string(argv[1]) == "--seconds") {
    seconds = std::atof(argv[2]);
    first = 3;
  }
  if (argc - first < 2) {
    std::fprintf(stderr, "usage: display-bench [--seconds N] VMM_CORE GUEST_ELF [QEMU]\n");
    return 64;
  }
  std::string core = argv[first], guest = argv[first + 1];
  std::string qemu = argc - first > 2 ? argv[first + 2] : "";
  std::printf("1920x1080x32 solid frames, %.0f s each, one VNC client (libvncclient, lossless)\n\n", seconds);
  std::printf(
      "| display | guest frames/s | frames seen/s | matched | latency median ms | p90 ms | PSS MiB |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- |\n");
  try {
    {
      Vmm ours({core, "-m", "128M", "-l", "com1,stdio", "-s", "29,fbuf,tcp=127.0.0.1:0,w=1920,h=1080",
                "--kernel", guest, "--cmdline", "test=display-animation", "bench"});
      std::string port = ours.waitFor(std::regex("VNC server on 127\\.0\\.0\\.1 port ([0-9]+)"), 30);
      if (port.empty() || ours.waitFor(std::regex("frame 1 "), 60).empty())
        throw std::runtime_error("our guest did not animate");
      print("cellvisor (display server)",
            measure(ours, static_cast<uint16_t>(std::stoi(port)), seconds, displayServerOf(ours.pid())));
    }
    if (!qemu.empty()) {
      // QEMU's PVH loader takes 32-bit ELF containers only: the same guest,
      // repackaged.
      std::string guest32 = "/tmp/display-bench-guest32-" + std::to_string(::getpid()) + ".elf";
      if (std::system(("objcopy -O elf32-i386 " + guest + " " + guest32).c_str()) != 0)
        throw std::runtime_error("objcopy could not repackage the guest for QEMU");
      auto free = cellvisor::firstFreeTcpPort("127.0.0.1", 5980, 6000);
      if (!free) throw std::runtime_error("no free VNC port");
      uint16_t port = *free;
      Vmm theirs({qemu,
                  "-accel",
                  "kvm",
                  "-M",
                  "pc",
                  "-m",
                  "128M",
                  "-nodefaults",
                  "-no-user-config",
                  "-vga",
                  "none",
                  "-device",
                  "bochs-display,xres=1920,yres=1080",
                  "-serial",
                  "stdio",
                  "-display",
                  "none",
                  "-vnc",
                  "127.0.0.1:" + std::to_string(port - 5900),
                  "-kernel",
                  guest32,
                  "-append",
                  "test=display-animation"});
      if (theirs.waitFor(std::regex("frame 1 "), 60).empty())
        throw std::runtime_error("QEMU's guest did not animate");
      print("QEMU 7.2 (whole process)", measure(theirs, port, seconds, theirs.pid()));
      ::unlink(guest32.c_str());
    }
    print("cellvisor, frames from the host", ceiling(core, guest, seconds));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "display-bench: %s\n", error.what());
    return 1;
  }
  return 0;
}
