// Runs vmm-core as a child process for guest tests: captures stdout and
// stderr, waits for text to appear, sends signals, collects the exit status.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace cellvisor::testing {

class CoreProcess {
 public:
  explicit CoreProcess(const std::vector<std::string>& arguments);
  ~CoreProcess();
  CoreProcess(const CoreProcess&) = delete;
  CoreProcess& operator=(const CoreProcess&) = delete;

  // Reads output until `text` appears in stdout or stderr; false on timeout or exit.
  bool waitFor(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Waits for exit (killing the process after `timeout`); returns its status,
  // or -1 if it had to be killed or died from a signal.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  void signal(int number);
  int pid() const { return pid_; }
  // Reads whatever output is ready without waiting.
  void poll() { pump(std::chrono::milliseconds(0)); }

  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }
  std::string output() const { return out_ + err_; }

 private:
  bool pump(std::chrono::milliseconds timeout);

  int pid_ = -1;
  int outFd_ = -1;
  int errFd_ = -1;
  int status_ = -2;
  std::string out_;
  std::string err_;
};

// The children of `pid` (a core's device servers), whichever thread spawned
// them; empty once `pid` is gone.
std::vector<int> childrenOf(int pid);
// The device servers among a standalone vmm-core's children: all but the
// confined core it forked (the same executable as itself).
std::vector<int> deviceServersOf(int pid);
// The device server among `pid`'s whose open files include `path` (a blk
// server holds its image open; a net server /dev/net/tun); 0 while none
// does (being restarted).
int serverHolding(int pid, const std::string& path);
// The process that runs the guest: a standalone vmm-core's forked, confined
// core (the child that is the same executable), or `pid` itself.
int guestCoreOf(int pid);

// Paths the build passes in: the core binary and the test guest.
std::string coreBinary();
std::string guestImage();
// Empty when the host can run guests; otherwise why not.
std::string kvmUnavailableReason();
// Why this host cannot give a test a private network namespace with a bridge
// and a tap (not root, no unshare/ip, no bridge or tun support), or "".
std::string networkUnavailableReason();

}  // namespace cellvisor::testing
