// Each running VM's cgroup (v2), the Linux counterpart of what rctl(8) and
// nice(8) do for vm-bhyve: one cgroup per VM under the subtree vmmd was
// given, with a child for the core and one for each device server (each
// server is born in its own: clone3's CLONE_INTO_CGROUP). vm-bhyve's keys
// become the VM's cpu.weight.nice (priority), cpu.max (limit_pcpu) and
// io.max on its disks' block devices (limit_rbps/wbps/riops/wiops); guest
// RAM plus overhead its memory.max; cgroup.kill ends the whole VM at once;
// `vmctl info` reads usage from its cpu.stat, memory.current and io.stat.
// A key the host's cgroups cannot apply is an error at start, never silence.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/unique-fd.h"
#include "vmmd/vm-config.h"

namespace cellvisor {

// Where VMs' cgroups are made.
class CgroupTree {
 public:
  // `requested`: vmmd's --cgroup (a directory of a cgroup v2 mount, made if
  // missing). Empty: vmmd's own cgroup (the unit's delegated one under
  // systemd), which vmmd then leaves for a leaf child "vmmd": a cgroup whose
  // children use controllers may hold no process itself; at the hierarchy's
  // root, a "cellvisor" child. Never throws: without cgroup v2, or without
  // the right to write it, the tree is unavailable and says why.
  static CgroupTree locate(const std::string& requested);
  // A tree at a directory the caller vouches for, unchecked (tests).
  static CgroupTree at(std::filesystem::path root) {
    CgroupTree tree;
    tree.root_ = std::move(root);
    return tree;
  }

  bool available() const { return !root_.empty(); }
  const std::filesystem::path& root() const { return root_; }
  // Why VMs run without a cgroup ("" when available()).
  const std::string& unavailableReason() const { return reason_; }
  // The controllers the root offers its children (cpu, io, memory, pids...).
  std::set<std::string> controllers() const;
  // Turns the offered ones among cpu, io, memory and pids on for the
  // root's children (cgroup.subtree_control); returns those now on.
  std::set<std::string> enableControllers();

 private:
  static std::set<std::string> enableAt(const std::filesystem::path& cgroup);

  std::filesystem::path root_;
  std::string reason_;
};

struct VmUsage {
  uint64_t cpuMicroseconds = 0;
  std::map<std::string, uint64_t> cpuByProcess;  // "core", "disk0", ...: microseconds
  std::optional<uint64_t> memoryBytes;           // Without the memory controller: none.
  std::optional<uint64_t> memoryLimitBytes;
  struct Io {
    uint64_t readBytes = 0, writtenBytes = 0, reads = 0, writes = 0;
  };
  std::optional<Io> io;  // Without the io controller: none.
};

class VmCgroup {
 public:
  // Makes the VM's cgroup (a stale one left by a vmmd that died is emptied
  // and made anew) and applies `limits` and `memoryLimitBytes`. `disks`: the
  // images (files or block devices) whose devices io.max throttles. Throws
  // VmConfigError naming the key and what the host lacks.
  VmCgroup(CgroupTree& tree, const std::string& vmName, const ResourceLimits& limits,
           uint64_t memoryLimitBytes, const std::vector<std::string>& disks);
  // Kills what still runs in it and removes it.
  ~VmCgroup();
  VmCgroup(const VmCgroup&) = delete;
  VmCgroup& operator=(const VmCgroup&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The child cgroup for one process ("core", "disk0"; made on first use):
  // a directory fd for CLONE_INTO_CGROUP, valid while this object lives.
  int child(const std::string& name);
  // Moves a running process (every thread) into child `name`. Throws.
  void move(const std::string& name, pid_t pid);
  // cgroup.kill: SIGKILL to every process of the VM at once.
  void kill();
  VmUsage usage() const;
  // What was applied, one line each ("limit_pcpu=20: cpu.max 20000 100000").
  const std::vector<std::string>& applied() const { return applied_; }

 private:
  void write(const std::string& file, const std::string& value, const std::string& key);
  void remove();

  std::filesystem::path path_;
  std::map<std::string, UniqueFd> children_;
  std::vector<std::string> applied_;
};

// Where cgroup `cgroup` (as /proc/self/cgroup names it) is in the file
// system, for a cgroup2 mount at `mountPoint` showing `mountRoot`: the
// mount point itself for the hierarchy's root.
std::filesystem::path cgroupDirectory(const std::filesystem::path& mountPoint, const std::string& mountRoot,
                                      const std::string& cgroup);

// Usage as `vmctl info` shows it, one line each (cpu, memory, io).
std::vector<std::string> describeUsage(const VmUsage& usage);

// The whole disk a file or block device lives on ("254:0"), as io.max
// wants it; nullopt for a file on a filesystem with no block device
// (tmpfs, overlay, NFS).
std::optional<std::string> blockDeviceOf(const std::string& path);

}  // namespace cellvisor
