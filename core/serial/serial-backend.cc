#include "core/serial/serial-backend.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "base/system-error.h"
#include "base/unique-fd.h"
#include "base/unix-socket.h"
#include "core/serial/serial-input.h"

namespace cellvisor {
namespace {

// Closing a pty master hangs up its slave and throws away what the user has
// not read yet: the guest's last words before it powered off. While someone
// holds the terminal open and output is unread, wait for them to take it (a
// reader that was not scheduled for a while must not lose the tail: 50 ms
// of "no progress" once did), up to DRAIN_LIMIT; with nobody on the
// terminal there is no one to wait for.
void drainPty(int master, const std::string& slavePath) {
  constexpr std::chrono::milliseconds DRAIN_LIMIT{2000};
  constexpr std::chrono::milliseconds DRAIN_POLL{10};
  if (slavePath.rfind("/dev/pts/", 0) != 0) return;
  for (auto waited = std::chrono::milliseconds(0); waited < DRAIN_LIMIT; waited += DRAIN_POLL) {
    // The master reports a hang-up while no process holds the slave.
    pollfd readable{master, POLLIN, 0};
    if (::poll(&readable, 1, 0) < 0 || (readable.revents & POLLHUP)) return;
    // Opened only to ask, and closed again: while we hold it, the master
    // would not tell us that the user has gone.
    UniqueFd slave(::open(slavePath.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
    if (!slave) return;
    // Polled, not asked with FIONREAD: the guest's last bytes may still be
    // on their way to the slave's line discipline (a kernel work item),
    // where FIONREAD does not count them; a poll pushes them through.
    pollfd unread{slave.get(), POLLIN, 0};
    if (::poll(&unread, 1, 0) <= 0 || !(unread.revents & POLLIN)) return;
    slave.reset();
    std::this_thread::sleep_for(DRAIN_POLL);
  }
}

void writeAll(int fd, std::span<const uint8_t> bytes, bool dropWhenBlocked) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t written = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (written > 0) {
      done += static_cast<size_t>(written);
    } else if (written < 0 && errno == EINTR) {
      continue;
    } else {
      // A terminal nobody reads, or a peer that went away: the bytes are
      // gone, as on a real serial line with no listener.
      (void)dropWhenBlocked;
      return;
    }
  }
}

void setNonBlocking(int fd) {
  int flags = checkSyscall(::fcntl(fd, F_GETFL), "fcntl F_GETFL");
  checkSyscall(::fcntl(fd, F_SETFL, flags | O_NONBLOCK), "fcntl F_SETFL");
}

// Raw mode on a terminal for as long as the backend lives.
class RawTerminal {
 public:
  explicit RawTerminal(int fd) : fd_(fd) {
    if (::isatty(fd) && ::tcgetattr(fd, &saved_) == 0) {
      termios raw = saved_;
      ::cfmakeraw(&raw);
      raw.c_oflag |= OPOST;  // Keep \n -> \r\n so host-side output stays readable.
      ::tcsetattr(fd, TCSANOW, &raw);
      active_ = true;
    }
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
  }
  // Someone else restores the terminal (a confined core's supervisor).
  void forget() { active_ = false; }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

class StdioBackend : public SerialBackend {
 public:
  StdioBackend() : raw_(STDIN_FILENO) {}
  void writeOutput(std::span<const uint8_t> bytes) override { writeAll(STDOUT_FILENO, bytes, false); }
  void startInput(uv_loop_t* loop, Uart16550& uart) override {
    try {
      input_.emplace(loop, STDIN_FILENO, uart, [] {});  // EOF: no more typed input.
    } catch (const std::runtime_error&) {
      // stdin is a file or /dev/null: the guest simply gets no input.
    }
  }
  std::string endpoint() const override { return "stdio"; }
  // The supervisor saved the terminal's mode before the core started.
  void handedOver() override { raw_.forget(); }

 private:
  RawTerminal raw_;
  std::optional<SerialInput> input_;
};

// A terminal fd we own: a pty master or a /dev tty.
class TerminalBackend : public SerialBackend {
 public:
  TerminalBackend(UniqueFd fd, std::string endpoint) : fd_(std::move(fd)), endpoint_(std::move(endpoint)) {
    setNonBlocking(fd_.get());
  }
  void writeOutput(std::span<const uint8_t> bytes) override { writeAll(fd_.get(), bytes, true); }
  ~TerminalBackend() override {
    if (!handedOver_) drainPty(fd_.get(), endpoint_);
    input_.reset();
    if (retry_ != nullptr) {
      uv_close(reinterpret_cast<uv_handle_t*>(retry_),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    }
  }
  void startInput(uv_loop_t* loop, Uart16550& uart) override {
    uart_ = &uart;
    retry_ = new uv_timer_t;
    uv_timer_init(loop, retry_);
    retry_->data = this;
    listen();
  }
  std::string endpoint() const override { return endpoint_; }
  std::optional<Handover> handover() const override {
    if (endpoint_.rfind("/dev/pts/", 0) != 0) return std::nullopt;
    return Handover{"", "", fd_.get(), endpoint_};
  }
  void handedOver() override { handedOver_ = true; }

 private:
  void listen() {
    // A pty master reports EIO while no one holds the slave open: look again
    // a little later instead of giving up on input.
    input_.emplace(retry_->loop, fd_.get(), *uart_, [this] {
      uv_timer_start(
          retry_, [](uv_timer_t* timer) { static_cast<TerminalBackend*>(timer->data)->listen(); }, 200, 0);
    });
  }

  Uart16550* uart_ = nullptr;
  uv_timer_t* retry_ = nullptr;
  bool handedOver_ = false;
  UniqueFd fd_;
  std::string endpoint_;
  std::optional<SerialInput> input_;
};

class FileBackend : public SerialBackend {
 public:
  explicit FileBackend(const std::string& path)
      : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)), path_(path) {
    if (!fd_) throwSystemError("open serial log " + path);
  }
  void writeOutput(std::span<const uint8_t> bytes) override { writeAll(fd_.get(), bytes, false); }
  void startInput(uv_loop_t*, Uart16550&) override {}
  std::string endpoint() const override { return "file=" + path_; }

 private:
  UniqueFd fd_;
  std::string path_;
};

class UnixSocketBackend : public SerialBackend {
 public:
  // `path`: the socket's name, removed again when the backend goes (empty
  // for a socket someone else made and will remove: vmmd's).
  UnixSocketBackend(UniqueFd listener, std::string path, std::string endpoint)
      : path_(std::move(path)), endpoint_(std::move(endpoint)), listener_(std::move(listener)) {}
  ~UnixSocketBackend() override {
    if (accept_ != nullptr) {
      uv_poll_stop(accept_);
      uv_close(reinterpret_cast<uv_handle_t*>(accept_),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    }
    if (auto left = handover()) finishHandover(*left, UniqueFd());
  }
  std::optional<Handover> handover() const override {
    if (path_.empty()) return std::nullopt;
    return Handover{path_, "", -1, ""};
  }
  void handedOver() override { path_.clear(); }

  void writeOutput(std::span<const uint8_t> bytes) override {
    std::lock_guard lock(clientMutex_);
    if (client_) {
      writeAll(client_.get(), bytes, true);
      return;
    }
    // Nobody attached: keep the latest output for whoever attaches (the boot
    // messages a `vmctl start -f` or a late `vmctl console` wants to see).
    backlog_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (backlog_.size() > BACKLOG_BYTES) backlog_.erase(0, backlog_.size() - BACKLOG_BYTES);
  }
  void startInput(uv_loop_t* loop, Uart16550& uart) override {
    uart_ = &uart;
    accept_ = new uv_poll_t;
    uv_poll_init(loop, accept_, listener_.get());
    accept_->data = this;
    uv_poll_start(accept_, UV_READABLE, [](uv_poll_t* poll, int, int) {
      static_cast<UnixSocketBackend*>(poll->data)->acceptClient(poll->loop);
    });
  }
  std::string endpoint() const override { return endpoint_; }

 private:
  void acceptClient(uv_loop_t* loop) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    UniqueFd client(fd);
    {
      std::lock_guard lock(clientMutex_);
      if (client_) return;  // One console user at a time; this one is closed.
    }
    // Not under clientMutex_: starting input takes the UART's lock, and a
    // vCPU holding that lock may be waiting for clientMutex_ to write output.
    input_.emplace(loop, client.get(), *uart_, [this] { dropClient(); });
    std::lock_guard lock(clientMutex_);
    client_ = std::move(client);
    writeAll(client_.get(), {reinterpret_cast<const uint8_t*>(backlog_.data()), backlog_.size()}, true);
    backlog_.clear();
  }
  void dropClient() {
    // The input's poll is stopped; it is replaced when the next client comes.
    std::lock_guard lock(clientMutex_);
    client_.reset();
  }

  std::string path_;
  std::string endpoint_;
  UniqueFd listener_;
  uv_poll_t* accept_ = nullptr;
  Uart16550* uart_ = nullptr;
  static constexpr size_t BACKLOG_BYTES = 64 * 1024;
  std::mutex clientMutex_;
  UniqueFd client_;
  std::string backlog_;  // Output while no client was attached (the latest 64 KiB).
  std::optional<SerialInput> input_;
};

// bhyve's nmdm(4) consoles (`-l com1,/dev/nmdm0A`, then `cu -l /dev/nmdm0B`)
// on a host that has no nmdm: a pty pair, with the other side's name made a
// symlink to the pty's slave for as long as the VM runs.
class NullModemBackend : public TerminalBackend {
 public:
  NullModemBackend(UniqueFd master, const std::string& slave, std::string link)
      : TerminalBackend(std::move(master), slave), link_(std::move(link)) {
    if (::symlink(slave.c_str(), link_.c_str()) == 0) return;
    // One left by a core that died: replace it if it leads nowhere.
    struct stat target {};
    if (errno == EEXIST && ::stat(link_.c_str(), &target) != 0 && ::unlink(link_.c_str()) == 0 &&
        ::symlink(slave.c_str(), link_.c_str()) == 0) {
      return;
    }
    if (errno == EEXIST) throw std::invalid_argument(link_ + " is in use (another VM's console?)");
    throwSystemError("symlink " + link_ + " -> " + slave);
  }
  ~NullModemBackend() override {
    if (!link_.empty()) finishHandover({link_, endpoint(), -1, ""}, UniqueFd());
  }
  std::optional<Handover> handover() const override {
    Handover left = TerminalBackend::handover().value_or(Handover{});
    left.path = link_;
    left.linkTarget = endpoint();
    return left;
  }
  void handedOver() override {
    TerminalBackend::handedOver();
    link_.clear();
  }

 private:
  std::string link_;
};

}  // namespace

void finishHandover(const SerialBackend::Handover& handover, UniqueFd terminal) {
  if (terminal) drainPty(terminal.get(), handover.terminalPath);
  if (handover.path.empty()) return;
  if (handover.linkTarget.empty()) {
    ::unlink(handover.path.c_str());
    return;
  }
  // Only ours: a successor may have taken the name since.
  char target[256];
  ssize_t length = ::readlink(handover.path.c_str(), target, sizeof(target) - 1);
  if (length > 0 && std::string(target, static_cast<size_t>(length)) == handover.linkTarget) {
    ::unlink(handover.path.c_str());
  }
}

namespace {

// "/dev/nmdm0A" -> "/dev/nmdm0B" (and B -> A), or "" when not an nmdm name.
std::string nullModemPeer(const std::string& spec) {
  constexpr std::string_view PREFIX = "/dev/nmdm";
  if (spec.rfind(PREFIX, 0) != 0 || spec.size() < PREFIX.size() + 2) return "";
  std::string unit = spec.substr(PREFIX.size(), spec.size() - PREFIX.size() - 1);
  if (!std::all_of(unit.begin(), unit.end(), [](char c) { return c >= '0' && c <= '9'; })) return "";
  char side = spec.back();
  if (side != 'A' && side != 'B') return "";
  return std::string(PREFIX) + unit + (side == 'A' ? 'B' : 'A');
}

struct PtyPair {
  UniqueFd master;
  std::string slave;
};

PtyPair openPtyPair() {
  int master = -1;
  int slave = -1;
  char name[256];
  termios raw{};
  ::cfmakeraw(&raw);
  checkSyscall(::openpty(&master, &slave, name, &raw, nullptr), "openpty");
  UniqueFd masterFd(master);
  ::fcntl(master, F_SETFD, FD_CLOEXEC);
  // Closing our slave end would make the master report EIO until a user
  // opens it; that is handled by the reopen timer above.
  ::close(slave);
  return {std::move(masterFd), name};
}

// A listening socket handed over by whoever started us (vmmd), as fd N.
UniqueFd adoptListeningSocket(const std::string& number) {
  size_t used = 0;
  int fd = -1;
  try {
    fd = std::stoi(number, &used);
  } catch (const std::exception&) {
  }
  if (used != number.size() || fd < 3)
    throw std::invalid_argument("listening-fd: bad descriptor '" + number + "'");
  int listening = 0;
  socklen_t length = sizeof(listening);
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || !listening) {
    throw std::invalid_argument("listening-fd=" + number + " is not a listening socket");
  }
  UniqueFd listener(fd);
  checkSyscall(::fcntl(fd, F_SETFD, FD_CLOEXEC), "fcntl F_SETFD");
  setNonBlocking(fd);
  return listener;
}

}  // namespace

std::unique_ptr<SerialBackend> openSerialBackend(const std::string& spec) {
  if (spec == "stdio") return std::make_unique<StdioBackend>();
  if (spec == "pty") {
    auto [master, slave] = openPtyPair();
    std::cerr << "console: " << slave << std::endl;
    return std::make_unique<TerminalBackend>(std::move(master), slave);
  }
  if (std::string peer = nullModemPeer(spec); !peer.empty()) {
    auto [master, slave] = openPtyPair();
    auto backend = std::make_unique<NullModemBackend>(std::move(master), slave, peer);
    std::cerr << "console: " << peer << " (" << slave << ")" << std::endl;
    return backend;
  }
  if (spec.rfind("file=", 0) == 0 && spec.size() > 5) return std::make_unique<FileBackend>(spec.substr(5));
  if (spec.rfind("unix=", 0) == 0 && spec.size() > 5) {
    std::string path = spec.substr(5);
    return std::make_unique<UnixSocketBackend>(listenOnUnixSocket(path), path, spec);
  }
  if (spec.rfind("listening-fd=", 0) == 0) {
    return std::make_unique<UnixSocketBackend>(adoptListeningSocket(spec.substr(13)), "", spec);
  }
  if (spec.rfind("/dev/", 0) == 0) {
    int fd = ::open(spec.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) throwSystemError("open " + spec);
    return std::make_unique<TerminalBackend>(UniqueFd(fd), spec);
  }
  throw std::invalid_argument("bad serial backend '" + spec +
                              "': expected stdio, pty, file=PATH, unix=PATH, /dev/nmdmNA or a /dev path");
}

}  // namespace cellvisor
