#include "vmmd/vm-cgroup.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace cellvisor {
namespace fs = std::filesystem;
namespace {

// The controllers vmmd uses: cpu (priority, limit_pcpu), io (limit_*bps,
// limit_*iops, io.stat), memory (the VM's memory.max, memory.current) and
// pids (counted, for a VM's share of the host's process table).
constexpr const char* WANTED_CONTROLLERS[] = {"cpu", "io", "memory", "pids"};

std::optional<std::string> readText(const fs::path& path) {
  std::ifstream file(path);
  if (!file) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(file), {});
}

// 0 or the errno of a failed write: cgroup files report refusals on write().
int writeText(const fs::path& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t written = ::write(fd, value.data(), value.size());
  int error = written == static_cast<ssize_t>(value.size()) ? 0 : (written < 0 ? errno : EIO);
  ::close(fd);
  return error;
}

std::set<std::string> words(const std::optional<std::string>& text) {
  std::set<std::string> result;
  if (!text) return result;
  std::istringstream stream(*text);
  for (std::string word; stream >> word;) result.insert(word);
  return result;
}

// "key value" lines (cpu.stat, memory.stat, cgroup.events).
std::optional<uint64_t> statField(const fs::path& file, const std::string& key) {
  auto text = readText(file);
  if (!text) return std::nullopt;
  std::istringstream stream(*text);
  for (std::string name, value; stream >> name >> value;) {
    if (name == key) return std::strtoull(value.c_str(), nullptr, 10);
  }
  return std::nullopt;
}

struct Cgroup2Mount {
  fs::path point;    // where it is mounted
  std::string root;  // the cgroup at that mount point ("/" unless namespaced)
};

// The cgroup v2 mount in our mount namespace, from /proc/self/mountinfo
// (on a hybrid host: /sys/fs/cgroup/unified).
std::optional<Cgroup2Mount> findCgroup2() {
  std::ifstream mounts("/proc/self/mountinfo");
  for (std::string line; std::getline(mounts, line);) {
    auto separator = line.find(" - ");
    if (separator == std::string::npos) continue;
    std::istringstream tail(line.substr(separator + 3));
    std::string type;
    tail >> type;
    if (type != "cgroup2") continue;
    std::istringstream head(line.substr(0, separator));
    std::string id, parent, device, root, point;
    head >> id >> parent >> device >> root >> point;
    return Cgroup2Mount{point, root};
  }
  return std::nullopt;
}

// Our own cgroup v2 path ("0::/system.slice/vmmd.service").
std::string ownCgroup() {
  std::ifstream file("/proc/self/cgroup");
  for (std::string line; std::getline(file, line);) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return "";
}

bool makeDirectory(const fs::path& path, std::string& error) {
  if (::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return true;
  error = fmt::format("{}: {}", path.string(), std::strerror(errno));
  return false;
}

bool populated(const fs::path& cgroup) {
  return statField(cgroup / "cgroup.events", "populated").value_or(0) != 0;
}

std::string megabytes(uint64_t bytes) {
  return fmt::format("{} MiB", bytes >> 20);
}

}  // namespace

fs::path cgroupDirectory(const fs::path& mountPoint, const std::string& mountRoot,
                         const std::string& cgroup) {
  auto relative = fs::path(cgroup).lexically_relative(mountRoot);
  // "/" relative to "/" is ".", and point/"." is not the point: the root.
  if (relative.empty() || relative == ".") return mountPoint;
  return (mountPoint / relative).lexically_normal();
}

CgroupTree CgroupTree::locate(const std::string& requested) {
  CgroupTree tree;
  auto mount = findCgroup2();
  if (!mount) {
    tree.reason_ = "this host mounts no cgroup v2 hierarchy";
    return tree;
  }
  std::string error;
  fs::path root;
  bool delegated = false;  // Given to vmmd by its service manager.
  if (!requested.empty()) {
    root = fs::path(requested).lexically_normal();
    auto inside = root.lexically_relative(mount->point);
    if (inside.empty() || inside.native().rfind("..", 0) == 0) {
      tree.reason_ =
          fmt::format("--cgroup {} is not inside the cgroup v2 mount {}", requested, mount->point.string());
      return tree;
    }
    std::error_code ignored;
    fs::create_directories(root, ignored);
    if (!fs::exists(root / "cgroup.procs")) {
      tree.reason_ = fmt::format("{}: cannot make a cgroup there", root.string());
      return tree;
    }
  } else {
    std::string own = ownCgroup();
    fs::path ownPath = cgroupDirectory(mount->point, mount->root, own);
    bool atRoot = ownPath == mount->point;
    if (own.empty() || !fs::exists(ownPath)) {
      tree.reason_ = "cannot find vmmd's own cgroup in " + mount->point.string();
      return tree;
    }
    if (atRoot) {
      // At the hierarchy's root (no service manager delegated a subtree):
      // the VMs go in a child of their own rather than beside the host's.
      root = ownPath / "cellvisor";
      if (!makeDirectory(root, error)) {
        tree.reason_ = error;
        return tree;
      }
    } else {
      // A delegated cgroup: vmmd moves into a leaf so the VMs beside it may
      // use controllers.
      root = ownPath;
      delegated = true;
      if (!makeDirectory(root / "vmmd", error)) {
        tree.reason_ = error;
        return tree;
      }
      if (int failed = writeText(root / "vmmd" / "cgroup.procs", "0")) {
        tree.reason_ =
            fmt::format("cannot move vmmd into {}: {}", (root / "vmmd").string(), std::strerror(failed));
        return tree;
      }
    }
  }
  if (::access((root / "cgroup.procs").c_str(), W_OK) != 0) {
    tree.reason_ = fmt::format("{}: not writable by vmmd (delegate it: Delegate=yes)", root.string());
    return tree;
  }
  tree.root_ = root;
  // Below a cgroup nobody delegated (the hierarchy's root, or --cgroup),
  // vmmd turns the controllers on along the way down itself.
  if (delegated) return tree;
  for (fs::path level = mount->point; level != root;) {
    tree.enableAt(level);
    level /= *root.lexically_relative(level).begin();
  }
  return tree;
}

std::set<std::string> CgroupTree::controllers() const {
  return words(readText(root_ / "cgroup.controllers"));
}

std::set<std::string> CgroupTree::enableAt(const fs::path& cgroup) {
  auto offered = words(readText(cgroup / "cgroup.controllers"));
  auto enabled = words(readText(cgroup / "cgroup.subtree_control"));
  for (const char* controller : WANTED_CONTROLLERS) {
    if (offered.count(controller) != 0 && enabled.count(controller) == 0)
      writeText(cgroup / "cgroup.subtree_control", std::string("+") + controller);
  }
  return words(readText(cgroup / "cgroup.subtree_control"));
}

std::set<std::string> CgroupTree::enableControllers() {
  return enableAt(root_);
}

std::optional<std::string> blockDeviceOf(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return std::nullopt;
  dev_t device = S_ISBLK(info.st_mode) ? info.st_rdev : info.st_dev;
  if (::major(device) == 0) return std::nullopt;  // tmpfs, overlay, NFS: no block device
  std::string name = fmt::format("{}:{}", ::major(device), ::minor(device));
  // io.max takes whole disks: a partition's limits are its disk's.
  fs::path sysfs = fs::path("/sys/dev/block") / name;
  std::error_code error;
  if (fs::exists(sysfs / "partition", error)) {
    auto disk = readText(fs::canonical(sysfs, error).parent_path() / "dev");
    if (disk) {
      name = *disk;
      name.erase(name.find_last_not_of(" \n") + 1);
    }
  }
  return name;
}

VmCgroup::VmCgroup(CgroupTree& tree, const std::string& vmName, const ResourceLimits& limits,
                   uint64_t memoryLimitBytes, const std::vector<std::string>& disks) {
  auto enabled = tree.enableControllers();
  auto require = [&](const std::string& key, const std::string& controller) {
    if (enabled.count(controller) != 0) return;
    auto offered = tree.controllers();
    std::string list;
    for (const auto& name : offered) list += (list.empty() ? "" : " ") + name;
    throw VmConfigError(fmt::format(
        "{}: needs cgroup v2's {} controller, which {} does not offer (it offers: {}); a host that mounts "
        "cgroup v1's {} hierarchy keeps the controller there",
        key, controller, tree.root().string(), list.empty() ? "none" : list,
        controller == "io" ? "blkio" : controller));
  };
  if (limits.priority) require(fmt::format("priority=\"{}\"", *limits.priority), "cpu");
  if (limits.pcpu) require(fmt::format("limit_pcpu=\"{}\"", *limits.pcpu), "cpu");
  bool ioLimits = limits.readBps || limits.writeBps || limits.readIops || limits.writeIops;
  const char* ioKey = limits.readBps    ? "limit_rbps"
                      : limits.writeBps ? "limit_wbps"
                      : limits.readIops ? "limit_riops"
                                        : "limit_wiops";
  if (ioLimits) require(ioKey, "io");
  std::set<std::string> devices;
  if (ioLimits) {
    for (const auto& disk : disks) {
      auto device = blockDeviceOf(disk);
      if (!device) {
        throw VmConfigError(fmt::format(
            "{}: {} is on a filesystem with no block device (tmpfs, overlay, NFS): io.max cannot throttle it",
            ioKey, disk));
      }
      devices.insert(*device);
    }
  }

  path_ = tree.root() / ("vm-" + vmName);
  std::string error;
  // One left by a vmmd that died: whatever still runs there is nobody's.
  remove();
  if (!makeDirectory(path_, error)) throw std::runtime_error("cgroup: " + error);
  try {
    if (limits.priority) {
      // cpu.weight.nice takes nice(1)'s scale, -20 to 19.
      int nice = std::min(*limits.priority, 19);
      write("cpu.weight.nice", std::to_string(nice), "priority");
      applied_.push_back(fmt::format("priority={}: cpu.weight.nice {}", *limits.priority, nice));
    }
    if (limits.pcpu) {
      // A percentage of one CPU per 100 ms period: 20 -> 20 ms of every 100.
      std::string max = fmt::format("{} 100000", uint64_t{*limits.pcpu} * 1000);
      write("cpu.max", max, "limit_pcpu");
      applied_.push_back(fmt::format("limit_pcpu={}: cpu.max {}", *limits.pcpu, max));
    }
    for (const auto& device : devices) {
      std::string line = device;
      if (limits.readBps) line += fmt::format(" rbps={}", *limits.readBps);
      if (limits.writeBps) line += fmt::format(" wbps={}", *limits.writeBps);
      if (limits.readIops) line += fmt::format(" riops={}", *limits.readIops);
      if (limits.writeIops) line += fmt::format(" wiops={}", *limits.writeIops);
      write("io.max", line, ioKey);
      applied_.push_back("io.max " + line);
    }
    if (enabled.count("memory") != 0 && memoryLimitBytes != 0) {
      write("memory.max", std::to_string(memoryLimitBytes), "memory");
      applied_.push_back(fmt::format("memory.max {} (guest RAM and overhead)", megabytes(memoryLimitBytes)));
    }
  } catch (...) {
    remove();
    throw;
  }
}

VmCgroup::~VmCgroup() {
  remove();
}

void VmCgroup::write(const std::string& file, const std::string& value, const std::string& key) {
  if (int failed = writeText(path_ / file, value)) {
    throw VmConfigError(fmt::format("{}: writing '{}' to {}: {}", key, value, (path_ / file).string(),
                                    std::strerror(failed)));
  }
}

int VmCgroup::child(const std::string& name) {
  auto& fd = children_[name];
  if (!fd) {
    std::string error;
    if (!makeDirectory(path_ / name, error)) throw std::runtime_error("cgroup: " + error);
    fd = UniqueFd(::open((path_ / name).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd)
      throw std::runtime_error(fmt::format("cgroup: {}: {}", (path_ / name).string(), std::strerror(errno)));
  }
  return fd.get();
}

void VmCgroup::move(const std::string& name, pid_t pid) {
  child(name);
  if (int failed = writeText(path_ / name / "cgroup.procs", std::to_string(pid))) {
    throw std::runtime_error(
        fmt::format("cgroup: moving {} into {}: {}", pid, (path_ / name).string(), std::strerror(failed)));
  }
}

void VmCgroup::kill() {
  if (writeText(path_ / "cgroup.kill", "1") == 0) return;
  // Kernels before 5.14: one by one, every process of every child.
  for (const auto& entry :
       fs::recursive_directory_iterator(path_, fs::directory_options::skip_permission_denied)) {
    if (entry.path().filename() != "cgroup.procs") continue;
    std::istringstream pids(readText(entry.path()).value_or(""));
    for (pid_t pid; pids >> pid;) ::kill(pid, SIGKILL);
  }
}

void VmCgroup::remove() {
  if (path_.empty() || !fs::exists(path_)) return;
  if (populated(path_)) kill();
  // Killed processes leave their cgroup as they exit: a moment.
  for (int i = 0; i < 200 && populated(path_); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  children_.clear();
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(path_, error)) {
    if (entry.is_directory()) ::rmdir(entry.path().c_str());
  }
  ::rmdir(path_.c_str());
}

VmUsage VmCgroup::usage() const {
  VmUsage usage;
  usage.cpuMicroseconds = statField(path_ / "cpu.stat", "usage_usec").value_or(0);
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(path_, error)) {
    if (!entry.is_directory()) continue;
    usage.cpuByProcess[entry.path().filename()] =
        statField(entry.path() / "cpu.stat", "usage_usec").value_or(0);
  }
  if (auto current = readText(path_ / "memory.current"))
    usage.memoryBytes = std::strtoull(current->c_str(), nullptr, 10);
  if (auto max = readText(path_ / "memory.max"); max && max->rfind("max", 0) != 0)
    usage.memoryLimitBytes = std::strtoull(max->c_str(), nullptr, 10);
  if (auto stat = readText(path_ / "io.stat")) {
    // "254:0 rbytes=... wbytes=... rios=... wios=... dbytes=... dios=..."
    VmUsage::Io io;
    std::istringstream stream(*stat);
    for (std::string field; stream >> field;) {
      auto equals = field.find('=');
      if (equals == std::string::npos) continue;
      uint64_t value = std::strtoull(field.c_str() + equals + 1, nullptr, 10);
      std::string name = field.substr(0, equals);
      if (name == "rbytes") io.readBytes += value;
      if (name == "wbytes") io.writtenBytes += value;
      if (name == "rios") io.reads += value;
      if (name == "wios") io.writes += value;
    }
    usage.io = io;
  }
  return usage;
}

std::vector<std::string> describeUsage(const VmUsage& usage) {
  auto seconds = [](uint64_t microseconds) { return fmt::format("{:.3f} s", microseconds / 1e6); };
  std::string cpu = "cpu: " + seconds(usage.cpuMicroseconds);
  std::string parts;
  for (const auto& [name, microseconds] : usage.cpuByProcess)
    parts += fmt::format("{}{} {}", parts.empty() ? "" : ", ", name, seconds(microseconds));
  if (!parts.empty()) cpu += " (" + parts + ")";
  std::vector<std::string> lines = {cpu};
  if (usage.memoryBytes) {
    lines.push_back(fmt::format("memory: {}{}", megabytes(*usage.memoryBytes),
                                usage.memoryLimitBytes ? " of " + megabytes(*usage.memoryLimitBytes) : ""));
  } else {
    lines.push_back("memory: not accounted (the VM's cgroup has no memory controller)");
  }
  if (usage.io) {
    lines.push_back(fmt::format("io: read {} in {} operations, wrote {} in {}",
                                megabytes(usage.io->readBytes), usage.io->reads,
                                megabytes(usage.io->writtenBytes), usage.io->writes));
  } else {
    lines.push_back("io: not accounted (the VM's cgroup has no io controller)");
  }
  return lines;
}

}  // namespace cellvisor
