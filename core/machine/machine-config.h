// Everything needed to build one VM, filled from bhyve-style options and
// `key=value` config (the same keys bhyve(8) uses where one exists).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "host/pci-slot.h"

namespace cellvisor {

struct MachineConfig {
  std::string name;
  uint32_t cpus = 1;
  // bhyve's -c topology, checked against cpus; CPUID still shows one
  // package whose vCPUs are all threads.
  uint32_t sockets = 1;
  uint32_t cores = 1;
  uint32_t threads = 1;
  uint64_t memoryBytes = 256ull << 20;
  bool memoryOvercommit = false;   // memory.overcommit: allow more than RAM + swap.
  bool memoryWired = false;        // -S, memory.wired: mlock guest RAM.
  bool guestMemoryInCore = false;  // -C, memory.guest_in_core; else MADV_DONTDUMP.
  bool x2apic = false;             // -x / -a, x86.x2apic: x2APIC in CPUID (bhyve: off).
  bool strictIo = false;           // -e, x86.strictio: an unemulated port ends the VM.
  bool strictMsr = true;           // Not -w, x86.strictmsr: an unknown MSR is KVM's #GP.
  std::map<uint32_t, std::vector<uint32_t>> vcpuHostCpus;  // -p, vcpu.N.cpuset.
  std::string uuid;                                        // -U, uuid: SMBIOS's system UUID under firmware.
  std::string keyboardLayout;                              // -K, keyboard.layout: kept for a framebuffer.
  std::string bootrom;   // -l bootrom,FILE (lpc.bootrom): firmware at the top of 4 GiB.
  std::string bootvars;  // -l bootrom,FILE,VARS (lpc.bootvars): UEFI variable store.
  // bhyve's -f: files the firmware finds in fw_cfg beside the core's.
  struct FwCfgFile {
    std::string name;
    std::string data;  // The text of string=, or
    std::string path;  // the file of file=.
  };
  std::vector<FwCfgFile> fwCfgFiles;
  std::string kernelPath;
  std::string initrdPath;
  std::string cmdline;
  std::map<std::string, std::string> serial;  // "com1" -> backend spec
  bool utcClock = false;                      // bhyve -u
  std::vector<std::string> cpuidMask;
  bool cpuidMaskSet = false;  // False: use the host's default mask.
  std::vector<PciSlotConfig> pciSlots;
  // bhyve's bootindex (pci.0.S.F.bootindex, or in -s options): firmware
  // tries the lowest first. (slot, function) -> index.
  std::map<std::pair<int, int>, int> bootOrder;
  std::string sandbox = "enforce";  // The core and its device servers: off | log | enforce.
  // The VM's own unprivileged identity the core takes on once confined
  // (vmmd gives each VM one); unset: the core keeps its user's.
  std::optional<std::pair<uint32_t, uint32_t>> sandboxIdentity;  // uid, gid
  // Test-only: a call the confined core then makes to prove the sandbox
  // stops it ("open", "socket" or "execve").
  std::string sandboxFault;
  int statusFd = -1;      // Commands from vmmd (--status-fd).
  int deviceSocket = -1;  // Device resources from vmmd (--device-socket).
};

// A flat `key=value` store with the origin of each value, so an error can
// name the file and line (or the command-line option) it came from.
class ConfigStore {
 public:
  // Parses `key=value` lines; '#' starts a comment. Throws ConfigError.
  void loadFile(const std::string& path);
  void set(const std::string& key, const std::string& value, const std::string& origin);
  // Turns the store into a MachineConfig; throws ConfigError naming the
  // origin and key of any unknown key or bad value.
  MachineConfig build() const;
  // `key`'s value, or "" when unset.
  std::string valueOf(const std::string& key) const;
  // Where `key`'s value came from ("-m", "vm.conf:3"), or "" when unset.
  std::string originOf(const std::string& key) const;

 private:
  struct Value {
    std::string value;
    std::string origin;
  };
  std::map<std::string, Value> values_;
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses sizes like "512M", "2G" or "256" (bhyve: no suffix means MiB).
uint64_t parseMemorySize(const std::string& text);
// "0-3,6" -> {0, 1, 2, 3, 6}; throws ConfigError.
std::vector<uint32_t> parseCpuList(const std::string& text);
// True for names usable as a VM name and in paths: [A-Za-z0-9][A-Za-z0-9._-]*, <= 64.
bool isValidVmName(const std::string& name);

}  // namespace cellvisor
