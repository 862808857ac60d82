// Each running VM's own unprivileged identities, so that no process of one
// VM shares a uid with any process of another (nor with its own siblings):
// from system.conf's `vm_uid_range="FIRST-LAST"` (default below), a VM
// takes a block of UIDS_PER_VM uids while it runs: the first for its core,
// the next ones for its device servers in slot order. Group ids are the
// same numbers. A block is free again when the VM stops.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

namespace cellvisor {

struct VmIdentity {
  uid_t first;  // The core's; device server i gets first + 1 + i.
  uint32_t count;
  uid_t core() const { return first; }
  uid_t server(size_t index) const { return first + 1 + static_cast<uid_t>(index); }
};

class VmIdentities {
 public:
  static constexpr uint32_t UIDS_PER_VM = 64;
  // 0x60000000 up: far above the ranges useradd hands out (uids and
  // /etc/subuid's), room for 16384 VMs.
  static constexpr uid_t DEFAULT_FIRST = 0x6000'0000;
  static constexpr uid_t DEFAULT_LAST = DEFAULT_FIRST + 16384 * UIDS_PER_VM - 1;

  // `systemConfig`: the primary datastore's system.conf, read at each acquire.
  explicit VmIdentities(std::filesystem::path systemConfig) : systemConfig_(std::move(systemConfig)) {}

  // The lowest free block for VM `name` (the one it holds if it holds one).
  // Throws DatastoreError naming the key when vm_uid_range is malformed,
  // when every block is taken, or when `devices` do not fit a block.
  VmIdentity acquire(const std::string& name, size_t devices);
  void release(const std::string& name);

 private:
  std::filesystem::path systemConfig_;
  std::map<std::string, uid_t> held_;  // VM -> first uid of its block.
};

}  // namespace cellvisor
