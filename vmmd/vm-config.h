// A VM's configuration in vm-bhyve's format: one `key="value"` per line,
// '#' comments, vm-bhyve's key names (loader, cpu, memory, diskN_*,
// networkN_*, graphics*, comports, utctime, uuid, ...), plus the keys for
// direct kernel boot (kernel, kernel_initrd, kernel_cmdline). Unknown keys
// and bad values are errors naming file, line and key.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace cellvisor {

class VmConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DiskConfig {
  std::string type;        // virtio-blk (nvme and ahci-hd are recognised, not yet served)
  std::string dev;         // file | custom
  std::string name;        // file in the VM's directory, or an absolute path for custom
  std::string opts;        // device options, e.g. "ro,nocache"
  uint64_t sizeBytes = 0;  // diskN_size: used when the image is created
};

struct NetworkConfig {
  std::string type;  // virtio-net
  std::string vmSwitch;
  std::string mac;
};

// vm-bhyve's resource keys (rctl and nice(8) on FreeBSD), applied through
// the VM's cgroup (vmmd/vm-cgroup.h).
struct ResourceLimits {
  std::optional<int> priority;        // priority: nice value, -20 (first) to 20 (idle only)
  std::optional<uint32_t> pcpu;       // limit_pcpu: percent of one CPU (200 = two CPUs)
  std::optional<uint64_t> readBps;    // limit_rbps: bytes per second read from the disks
  std::optional<uint64_t> writeBps;   // limit_wbps
  std::optional<uint64_t> readIops;   // limit_riops: read operations per second
  std::optional<uint64_t> writeIops;  // limit_wiops
  bool any() const { return priority || pcpu || readBps || writeBps || readIops || writeIops; }
};

struct VmConfig {
  std::string loader = "kernel";  // kernel | bios | uefi | uefi-csm | grub (SeaBIOS, the disk's GRUB)
  bool uefiVars = false;          // uefi_vars: a per-VM copy of OVMF's variable store.
  uint32_t cpu = 1;
  uint64_t memoryBytes = 256ull << 20;
  std::string memoryText = "256M";
  std::map<int, DiskConfig> disks;
  std::map<int, NetworkConfig> networks;
  bool graphics = false;
  std::optional<uint16_t> graphicsPort;
  std::string graphicsListen;
  std::string graphicsResolution;
  std::string graphicsWait;  // yes | no | auto (wait while `vmctl install` runs)
  bool xhciMouse = false;    // xhci_mouse: a USB tablet (-s 30,xhci,tablet), the pointer that follows VNC's
  std::string graphicsVga;   // bhyve's vga= (on | io | off): accepted, there is no legacy VGA
  std::string vncPassword;
  std::vector<std::string> comports{"com1"};
  bool utctime = true;
  std::string uuid;
  std::optional<int> startSlot;
  std::string kernel;
  std::string kernelInitrd;
  std::string kernelCmdline;
  ResourceLimits limits;

  // Keys accepted but not acted on (vm-bhyve's for devices not here yet),
  // one line each naming the key.
  std::vector<std::string> warnings;
  // The file's lines in order, as key -> value, so a rewrite keeps them.
  std::vector<std::pair<std::string, std::string>> entries;
};

// Parses the text of `origin` (a path, for messages).
VmConfig parseVmConfig(const std::string& text, const std::string& origin);
VmConfig loadVmConfig(const std::string& path);
// Serialises `entries` back to vm-bhyve's format.
std::string formatVmConfig(const std::vector<std::pair<std::string, std::string>>& entries);

}  // namespace cellvisor
