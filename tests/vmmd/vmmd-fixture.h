// The vmmd tests' fixture: a daemon on a private datastore and socket,
// driven by the real vmctl, running the test guest on real KVM.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/boot/core-process.h"

namespace cellvisor::testing {

namespace fs = std::filesystem;

inline pid_t parentOf(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  return close == std::string::npos ? 0 : std::atoi(line.c_str() + close + 4);
}

inline std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

class Vmctl : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = kvmUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
    root = fs::path(::testing::TempDir()) / ("cellvisor-vmmd-" + std::to_string(::getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "store" / ".templates");
    socket = (root / "vmmd.sock").string();
    writeTemplate("echo", "test=echo");
    writeTemplate("stress", "test=virtio-blk-stress rounds=8");
    // The VMs' cgroups in one of the test's own, never beside another
    // run's (tests of several clones share this host's cgroup tree).
    if (auto mount = cgroup2Mount(); !mount.empty())
      cgroupRoot = mount / ("cellvisor-test-" + std::to_string(::getpid()));
    startDaemon();
  }
  void TearDown() override {
    stopDaemon();
    fs::remove_all(root);
    removeCgroups(cgroupRoot);
  }
  void startDaemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {env("CELLVISOR_VMMD"), "-d", (root / "store").string(), "-S", socket};
    if (!cgroupRoot.empty()) args.insert(args.end(), {"--cgroup", cgroupRoot.string()});
    args.insert(args.end(), extra.begin(), extra.end());
    daemon = std::make_unique<CoreProcess>(args);
    ASSERT_TRUE(daemon->waitFor("vmmd: serving")) << daemon->output();
  }
  void stopDaemon() {
    if (!daemon) return;
    daemon->signal(SIGTERM);
    daemon->wait(std::chrono::seconds(10));
    daemon.reset();
  }
  // The cgroup v2 mount ("" where the host has none).
  static fs::path cgroup2Mount() {
    std::ifstream mounts("/proc/self/mountinfo");
    for (std::string line; std::getline(mounts, line);) {
      auto separator = line.find(" - cgroup2 ");
      if (separator == std::string::npos) continue;
      std::istringstream fields(line.substr(0, separator));
      std::string id, parent, device, mountRoot, point;
      fields >> id >> parent >> device >> mountRoot >> point;
      return point;
    }
    return {};
  }
  // Removes a cgroup tree bottom-up (cgroups go with rmdir, not unlink).
  static void removeCgroups(const fs::path& cgroup) {
    std::error_code error;
    if (cgroup.empty() || !fs::is_directory(cgroup, error)) return;
    for (const auto& entry : fs::directory_iterator(cgroup, error)) {
      if (entry.is_directory(error)) removeCgroups(entry.path());
    }
    ::rmdir(cgroup.c_str());
  }
  void writeTemplate(const std::string& name, const std::string& cmdline,
                     const std::string& diskType = "virtio-blk", const std::string& extra = "") {
    std::ofstream(root / "store" / ".templates" / (name + ".conf"))
        << "loader=\"kernel\"\nkernel=\"" << guestImage() << "\"\nkernel_cmdline=\"" << cmdline
        << "\"\ncpu=\"1\"\nmemory=\"128M\"\ndisk0_type=\"" << diskType
        << "\"\ndisk0_name=\"disk0.img\"\ndisk0_size=\"16M\"\n"
        << extra;
  }
  // Replaces the disk's server by a copy of its binary (a live upgrade) while
  // the guest runs `guestTest` (a write-and-verify loop) on it.
  void upgradeDiskServerMidRun(const std::string& diskType, const std::string& guestTest,
                               const std::string& device) {
    writeTemplate("long", "test=" + guestTest + " rounds=5", diskType);
    ASSERT_EQ(vmctl({"create", "-t", "long", "up"}).first, 0);
    ASSERT_EQ(vmctl({"start", "up"}).first, 0);
    int before = 0;
    for (int i = 0; i < 100 && before <= 0; ++i) {
      before = serverPid("up");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_GT(before, 0);
    // The "new" binary: a copy of the server under another path.
    fs::path upgraded = copyOfServerBinary(before);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // Mid-run.
    auto [status, output] = vmctl({"device", "restart", "up", device, upgraded.string()});
    ASSERT_EQ(status, 0) << output;
    int after = waitForNewServer("up", before);
    ASSERT_GT(after, 0);
    EXPECT_NE(after, before);
    EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(after) + "/exe"), upgraded);
    // The guest runs to its end and reports success (exit status 33).
    std::string info = waitStopped("up");
    EXPECT_NE(info.find("last exit: exit status 33"), std::string::npos) << info << log("up");
    EXPECT_EQ(vmctl({"device", "restart", "up", device}).first, 1) << "not running any more";
    EXPECT_EQ(vmctl({"destroy", "up"}).first, 0);
  }
  // Runs vmctl; returns (status, stdout + stderr).
  std::pair<int, std::string> vmctl(std::vector<std::string> args) {
    args.insert(args.begin(), {env("CELLVISOR_VMCTL"), "-S", socket});
    CoreProcess process(args);
    int status = process.wait(std::chrono::seconds(30));
    return {status, process.output()};
  }

  // The first device server's pid from `vmctl devices --json`, 0 if none runs.
  pid_t serverPid(const std::string& vm) {
    std::string devices = vmctl({"devices", vm, "--json"}).second;
    auto at = devices.find(R"("pid":)");
    return at == std::string::npos ? 0 : std::atoi(devices.c_str() + at + 6);
  }
  // A live upgrade's "new" binary: a copy of `server`'s executable under the
  // test's root, where the servers' uid can reach and run it.
  fs::path copyOfServerBinary(pid_t server) {
    fs::path running = fs::read_symlink("/proc/" + std::to_string(server) + "/exe");
    fs::path upgraded = root / (running.filename().string() + ".new");
    fs::copy_file(running, upgraded);
    fs::permissions(upgraded, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
    fs::permissions(root, fs::perms::others_exec, fs::perm_options::add);
    return upgraded;
  }
  // Waits (up to 2 s) for a server other than `before` to run; 0 if none.
  pid_t waitForNewServer(const std::string& vm, pid_t before) {
    pid_t after = 0;
    for (int i = 0; i < 100 && (after <= 0 || after == before); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      after = serverPid(vm);
    }
    return after == before ? 0 : after;
  }
  // Waits (up to 30 s) for the VM to stop; returns `vmctl info`.
  std::string waitStopped(const std::string& vm) {
    std::string info;
    for (int i = 0; i < 600; ++i) {
      info = vmctl({"info", vm}).second;
      if (info.find("state: stopped") != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return info;
  }
  // Connects to a running VM's console socket, -1 if that fails. No retry:
  // vmmd makes the socket before `vmctl start` returns.
  int connectConsole(const std::string& vm) {
    std::string path = (root / "store" / vm / "console.sock").string();
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) return fd;
    ::close(fd);
    return -1;
  }
  // Reads a console until `text` has come (or `timeout`); returns what came.
  static std::string readUntil(int fd, const std::string& text,
                               std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::string seen;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (seen.find(text) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd ready{fd, POLLIN, 0};
      if (::poll(&ready, 1, 50) <= 0) continue;
      char buffer[1024];
      ssize_t count = ::recv(fd, buffer, sizeof(buffer), 0);
      if (count <= 0) break;
      seen.append(buffer, static_cast<size_t>(count));
    }
    return seen;
  }
  // A VM's vmm.log, for failure messages.
  std::string log(const std::string& vm) {
    std::ifstream file(root / "store" / vm / "vmm.log");
    return {std::istreambuf_iterator<char>(file), {}};
  }

  fs::path root;
  fs::path cgroupRoot;  // vmmd --cgroup: where this test's VMs get theirs
  std::string socket;
  std::unique_ptr<CoreProcess> daemon;
};

}  // namespace cellvisor::testing
