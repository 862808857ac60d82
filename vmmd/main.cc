// vmmd: the cellvisor supervisor daemon. Serves the control API
// (proto/control.capnp) on a unix socket that only its own user (and root)
// may use, keeps VMs in a vm-bhyve-style datastore, and runs each VM's core.
//
//   vmmd [-d DATASTORE] [-S SOCKET] [--core PATH] [--cgroup DIR]
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "vmmd/control-service.h"
#include "vmmd/uv-in-kj.h"

namespace {

std::string defaultCore() {
  auto self = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  for (const auto& candidate : {self / ".." / "core" / "vmm-core", self / "vmm-core"}) {
    if (::access(candidate.c_str(), X_OK) == 0) return std::filesystem::canonical(candidate);
  }
  return "vmm-core";
}

// Refuses every peer that is neither our user nor root.
bool trusted(kj::AsyncIoStream& connection) {
  ucred credentials{};
  uint length = sizeof(credentials);
  connection.getsockopt(SOL_SOCKET, SO_PEERCRED, &credentials, &length);
  return credentials.uid == ::geteuid() || credentials.uid == 0;
}

kj::Promise<void> acceptLoop(kj::ConnectionReceiver& listener, capnp::TwoPartyServer& server) {
  return listener.accept().then([&](kj::Own<kj::AsyncIoStream>&& connection) {
    if (trusted(*connection)) {
      server.accept(kj::mv(connection));
    } else {
      std::cerr << "vmmd: refused a connection from another user\n";
    }
    return acceptLoop(listener, server);
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cellvisor supervisor daemon"};
  std::string datastorePath = "/var/lib/cellvisor";
  std::string socketPath = "/run/cellvisor/vmmd.sock";
  std::string core = defaultCore();
  app.add_option("-d,--datastore", datastorePath, "datastore directory");
  app.add_option("-S,--socket", socketPath, "control socket path");
  app.add_option("--core", core, "vmm-core binary");
  std::string cgroup;
  app.add_option("--cgroup", cgroup,
                 "cgroup v2 directory for the VMs' cgroups (default: vmmd's own, as a systemd unit with "
                 "Delegate=yes has it)");
  CLI11_PARSE(app, argc, argv);

  try {
    // No kj::UnixEventPort::captureChildExit(): it reaps every child with
    // waitpid(-1), device servers included, whose exit statuses their
    // supervisors need. Each child is watched through its pidfd instead.
    // SIGTERM and SIGINT arrive as events (onSignal below) to stop cleanly.
    kj::UnixEventPort::captureSignal(SIGTERM);
    kj::UnixEventPort::captureSignal(SIGINT);
    auto io = kj::setupAsyncIo();
    cellvisor::DatastoreSet datastores(datastorePath);
    // Bridges do not survive a host reboot: make the configured switches.
    try {
      for (const auto& problem : cellvisor::Switches(datastores.primary().systemConfigPath()).apply()) {
        std::cerr << "vmmd: " << problem << '\n';
      }
    } catch (const std::exception& error) {
      std::cerr << "vmmd: switches: " << error.what() << '\n';
    }
    std::filesystem::create_directories(std::filesystem::path(socketPath).parent_path());
    ::unlink(socketPath.c_str());
    // The socket is the key to every VM: private to its owner from birth.
    mode_t old = ::umask(0177);
    auto address = io.provider->getNetwork().parseAddress("unix:" + socketPath).wait(io.waitScope);
    auto listener = address->listen();
    ::umask(old);
    cellvisor::UvInKj supervisorLoop(io);
    auto cgroups = cellvisor::CgroupTree::locate(cgroup);
    if (cgroups.available()) {
      std::cerr << "vmmd: VM cgroups in " << cgroups.root().string() << '\n';
    } else {
      std::cerr << "vmmd: VMs run without cgroups: " << cgroups.unavailableReason() << '\n';
    }
    auto service = kj::heap<cellvisor::ControlService>(io, supervisorLoop, datastores, cgroups, core);
    auto& control = *service;
    capnp::TwoPartyServer server(kj::mv(service));
    auto autostart = control.autostart().eagerlyEvaluate([](kj::Exception&& error) {
      std::cerr << "vmmd: autostart: " << error.getDescription().cStr() << '\n';
    });
    std::cerr << "vmmd: serving " << datastorePath << " on " << socketPath << '\n';
    auto shutdown = io.unixEventPort.onSignal(SIGTERM).exclusiveJoin(io.unixEventPort.onSignal(SIGINT));
    acceptLoop(*listener, server).exclusiveJoin(shutdown.ignoreResult()).wait(io.waitScope);
    ::unlink(socketPath.c_str());
    control.shutdown().wait(io.waitScope);
    std::cerr << "vmmd: stopped\n";
  } catch (const kj::Exception& error) {
    std::cerr << "vmmd: " << error.getDescription().cStr() << '\n';
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "vmmd: " << error.what() << '\n';
    return 1;
  }
  return 0;
}
