// uml-pci-bridge: puts real cellvisor device servers on the PCI bus of a
// User-Mode Linux (tests/uml/README.md), so that Linux's own drivers drive
// them on a host without KVM. Each `--device SOCKET=EMULATION[,OPTIONS]`
// is one vhost-user socket that UML connects to with
// `virtio_uml.device=SOCKET:4660`; its server is started, sandboxed and
// supervised as the core starts a slot's, once UML has handed over its RAM.
// `--display OPTIONS` adds a display server beside them (not on UML's bus)
// whose VNC pointer goes to the tablet, as the supervisor links them in a VM.
//
//   uml-pci-bridge --device /tmp/xhci.sock=xhci,tablet --display tcp=127.0.0.1:0,w=800,h=600
//
// It prints "uml-pci-bridge: vnc port N" for each display and then
// "uml-pci-bridge: ready", and exits when every UML connection has closed
// (or on SIGTERM/SIGINT).
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "base/unix-socket.h"
#include "host/server-catalog.h"
#include "tests/harness/virtio-harness.h"
#include "tests/uml/bridge/pci-over-virtio.h"
#include "tests/uml/bridge/vhost-user-device.h"

namespace cellvisor::uml {
namespace {

constexpr uint64_t VIRTIO_F_VERSION_1 = 1ull << 32;

volatile std::sig_atomic_t stopRequested = 0;

// One device server as a supervisor runs it: its launch, resources, the
// supervised process and the core's proxy for it.
struct ServedDevice {
  std::string name;
  ServerLaunch launch;
  std::unique_ptr<DeviceResources> resources;
  std::unique_ptr<DeviceServerProcess> process;
  std::unique_ptr<testing::SupervisedServer> supervisor;
  std::unique_ptr<DeviceChannel> channel;
  BridgeWiring wiring;
  std::unique_ptr<PciServerProxy> proxy;

  // Starts the server on `memory` (which must outlive it).
  void start(GuestMemory& memory) {
    process = std::make_unique<DeviceServerProcess>(std::move(launch), *resources, memory.memfd(),
                                                    memory.regions());
    supervisor = std::make_unique<testing::SupervisedServer>(*process);
    channel = std::make_unique<DeviceChannel>(*resources);
    proxy = std::make_unique<PciServerProxy>(*channel, wiring);
  }
};

// A device server on UML's bus: its socket, and what joins it to the server.
struct BridgedDevice {
  std::string socketPath;
  std::string emulation;
  UniqueFd listener;
  std::unique_ptr<VhostUserDevice> link;  // Owns UML's RAM: outlives the server.
  ServedDevice served;
  std::unique_ptr<PciOverVirtio> pci;
  bool hungUp = false;

  // UML's RAM arrived: start the server on it.
  void start(GuestMemory& memory) {
    served.start(memory);
    pci = std::make_unique<PciOverVirtio>(*link, *served.proxy, served.wiring);
    std::cerr << "uml-pci-bridge: " << served.name << ": server started for " << socketPath << '\n';
  }
};

// The display server off UML's bus, on a small RAM of its own.
struct Display {
  GuestMemory memory{2 << 20};
  ServedDevice served;
};

// The port a display's listening socket (its first backend) was bound to.
uint16_t vncPort(const ServerLaunch& launch) {
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  ::getsockname(launch.backends.at(0).get(), reinterpret_cast<sockaddr*>(&bound), &length);
  return bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                     : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

int usage(const std::string& problem) {
  std::cerr << "uml-pci-bridge: " << problem
            << "\nusage: uml-pci-bridge --device SOCKET=EMULATION[,OPTIONS]... [--display FBUF-OPTIONS]\n";
  return 2;
}

int run(int argc, char** argv) {
  std::vector<std::unique_ptr<BridgedDevice>> devices;
  std::unique_ptr<Display> display;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--device" || arg == "--display") && i + 1 < argc) {
      std::string value = argv[++i];
      int slot = static_cast<int>(devices.size()) + 3;
      if (arg == "--display") {
        display = std::make_unique<Display>();
        display->served.launch = prepareServerLaunch({29, 0, "fbuf", value}, 1, "enforce", "--display");
        continue;
      }
      auto equals = value.find('=');
      if (equals == std::string::npos || equals == 0)
        return usage("--device needs SOCKET=EMULATION[,OPTIONS]");
      auto device = std::make_unique<BridgedDevice>();
      device->socketPath = value.substr(0, equals);
      std::string spec = value.substr(equals + 1);
      auto comma = spec.find(',');
      PciSlotConfig config{slot, 0, spec.substr(0, comma),
                           comma == std::string::npos ? "" : spec.substr(comma + 1)};
      if (!isServerDevice(config.emulation)) return usage("'" + config.emulation + "' is no device server");
      device->emulation = config.emulation;
      device->served.name = serverDeviceName(config);
      device->served.launch = prepareServerLaunch(config, 1, "enforce", "--device " + value);
      devices.push_back(std::move(device));
    } else {
      return usage("unexpected argument '" + arg + "'");
    }
  }
  if (devices.empty()) return usage("no --device");

  // As a supervisor does: every device's resources first, joined, and only
  // then any server started.
  std::vector<DeviceResources*> all;
  std::vector<ServedDevice*> served;
  for (auto& device : devices) served.push_back(&device->served);
  if (display) served.push_back(&display->served);
  for (ServedDevice* device : served) {
    device->resources = makeDeviceResources(device->launch);
    all.push_back(device->resources.get());
  }
  linkInputDevices(all);
  for (auto& device : devices) {
    if (device->emulation == "fbuf")
      std::cout << "uml-pci-bridge: vnc port " << vncPort(device->served.launch) << std::endl;
  }
  if (display) {
    uint16_t port = vncPort(display->served.launch);
    display->served.start(display->memory);
    std::cout << "uml-pci-bridge: vnc port " << port << std::endl;
  }
  for (auto& device : devices) device->listener = listenOnUnixSocket(device->socketPath);
  std::cout << "uml-pci-bridge: ready" << std::endl;

  struct Watch {
    BridgedDevice* device;
    enum { LISTENER, LINK, KICK, INTERRUPT } what;
    uint16_t index;
  };
  bool anyConnected = false;
  while (stopRequested == 0) {
    std::vector<pollfd> fds;
    std::vector<Watch> watches;
    bool anyOpen = false;
    for (auto& device : devices) {
      BridgedDevice* d = device.get();
      if (!d->link) {
        fds.push_back({d->listener.get(), POLLIN, 0});
        watches.push_back({d, Watch::LISTENER, 0});
        anyOpen = true;
        continue;
      }
      if (d->hungUp) continue;
      anyOpen = true;
      fds.push_back({d->link->fd(), POLLIN, 0});
      watches.push_back({d, Watch::LINK, 0});
      for (uint16_t q = 0; q < VhostUserDevice::MAX_QUEUES; ++q) {
        if (!d->link->queue(q).kick) continue;
        fds.push_back({d->link->queue(q).kick.get(), POLLIN, 0});
        watches.push_back({d, Watch::KICK, q});
      }
      if (d->pci) {
        for (uint16_t v = 0; v < d->served.resources->vectorCount(); ++v) {
          fds.push_back({d->served.resources->interrupt(v), POLLIN, 0});
          watches.push_back({d, Watch::INTERRUPT, v});
        }
      }
    }
    if (anyConnected && !anyOpen) break;
    if (::poll(fds.data(), fds.size(), 1000) < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "poll");
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      BridgedDevice& d = *watches[i].device;
      switch (watches[i].what) {
        case Watch::LISTENER: {
          int connection = ::accept4(d.listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
          if (connection < 0) break;
          d.link = std::make_unique<VhostUserDevice>(UniqueFd(connection), VIRTIO_F_VERSION_1, d.served.name);
          d.link->onMemory = [&d](GuestMemory& memory) { d.start(memory); };
          anyConnected = true;
          break;
        }
        case Watch::LINK:
          if (!d.link->handleMessage()) {
            std::cerr << "uml-pci-bridge: " << d.served.name << ": UML hung up\n";
            d.hungUp = true;
          }
          break;
        case Watch::KICK:
          d.link->drainKick(watches[i].index);
          if (d.pci && watches[i].index == PciOverVirtio::COMMAND_QUEUE) d.pci->serveCommands();
          if (d.pci && watches[i].index == PciOverVirtio::INTERRUPT_QUEUE) d.pci->deliverInterrupts();
          break;
        case Watch::INTERRUPT: {
          uint64_t count;
          if (::read(fds[i].fd, &count, sizeof(count)) == sizeof(count)) d.pci->raise(watches[i].index);
          break;
        }
      }
    }
  }
  for (auto& device : devices) ::unlink(device->socketPath.c_str());
  return 0;
}

}  // namespace
}  // namespace cellvisor::uml

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  struct sigaction stop {};
  stop.sa_handler = [](int) { cellvisor::uml::stopRequested = 1; };
  ::sigaction(SIGTERM, &stop, nullptr);
  ::sigaction(SIGINT, &stop, nullptr);
  try {
    return cellvisor::uml::run(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "uml-pci-bridge: " << error.what() << '\n';
    return 1;
  }
}
