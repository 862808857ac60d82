// A launch descriptor: what the supervisor needs to know to run one kind of
// device server. Each server folder registers its own (servers/NAME/
// launch.cc) and the build links every registered kind into the host
// library's users, so a new device is its folder plus one build line; the
// core and vmmd look kinds up by name and never name a device themselves.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/unique-fd.h"

namespace cellvisor {

// What a kind's prepare step works from.
struct LaunchContext {
  std::string options;  // The slot's options, e.g. "disk.img,ro".
  uint32_t vcpus;
  std::string where;  // How the user named the device, for errors ("disk0", "-s 4:0,virtio-blk").
};

// What a kind's prepare step decides: the options the server gets, the
// backends opened on its behalf (it opens no paths), and its fd counts.
struct PreparedServer {
  std::string options;
  std::vector<UniqueFd> backends;  // At most MAX_BACKENDS (proto/bootstrap-fds.h).
  std::string backendName;         // e.g. the tap's interface name
  uint16_t doorbells = 1;          // Doorbell eventfds (one per queue for virtio).
  uint16_t vectors = 2;            // MSI-X vectors, one interrupt eventfd each.
  uint64_t barMemoryBytes = 0;     // Shared BAR memory (VRAM, a controller memory buffer); 0: none.
  // A display: its clients' keys and pointer go to the core over an input
  // link (the pointer to a tablet, when the VM has one).
  bool inputSource = false;
  // A tablet: reads the pointer of the VM's display over a link of its own.
  bool pointerSink = false;
};

// Which of vm-bhyve's device keys a kind serves: `diskN_type` or
// `networkN_type` with this name, or neither.
enum class ConfigRole { NONE, DISK, NETWORK };

struct ServerKind {
  std::string emulation;   // bhyve's `-s` name, e.g. "virtio-blk".
  std::string binary;      // Installed as libexec/cellvisor/BINARY; in the build, servers/FOLDER/BINARY.
  std::string folder;      // The server's folder when several emulations share it; "" = the emulation.
  std::string policyName;  // e.g. "virtio-blk.policy"
  std::string_view policyText;
  ConfigRole role = ConfigRole::NONE;
  std::string configType;  // The vm-bhyve type this kind serves, e.g. "virtio-blk".
  // What follows the PCI function in the Open Firmware path firmware gives
  // the bootable device behind it (bootorder): "" when it is the function
  // itself, e.g. "/drive@0/disk@0" for a SATA port's device.
  std::string bootPathSuffix;
  // Parses the options and opens the backend. Throws std::invalid_argument
  // (bad options) or std::system_error (a backend that cannot be opened),
  // with `where` in front of the message.
  std::function<PreparedServer(const LaunchContext&)> prepare;
  // Whether the core holds its vCPUs until this device says a client is
  // there (fbuf's `wait`), from the slot's options: asked by the core of its
  // own configuration, never of anything a server could write. Optional.
  std::function<bool(const std::string& options)> holdsVcpusForClient;
};

// Registration from a server folder's launch.cc, at static initialization:
//   const ServerKindRegistration registration{ServerKind{...}};
struct ServerKindRegistration {
  explicit ServerKindRegistration(ServerKind kind);
};

// Where a server binary lives: servers/FOLDER/BINARY in the build tree, or
// libexec when installed (BINARY defaults to FOLDER-server). Throws
// std::runtime_error if not found.
std::string findServerBinary(const std::string& folder, std::string binary = "");

// nullptr when no server serves `emulation`.
const ServerKind* findServerKind(std::string_view emulation);
// The kind serving vm-bhyve type `type` in `role`, or nullptr.
const ServerKind* findServerKindFor(ConfigRole role, std::string_view type);
// Every registered kind, by emulation name.
std::vector<const ServerKind*> serverKinds();

}  // namespace cellvisor
