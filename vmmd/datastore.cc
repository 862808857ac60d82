#include "vmmd/datastore.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "base/system-error.h"
#include "base/unique-fd.h"
#include "core/machine/machine-config.h"
#include "vmmd/system-config.h"

namespace cellvisor {
namespace fs = std::filesystem;

void writeFileAtomically(const fs::path& path, const std::string& contents) {
  fs::path temporary = path;
  temporary += fmt::format(".tmp-{}", ::getpid());
  {
    UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) throwSystemError("create " + temporary.string());
    size_t done = 0;
    while (done < contents.size()) {
      ssize_t written = ::write(fd.get(), contents.data() + done, contents.size() - done);
      if (written < 0) {
        if (errno == EINTR) continue;
        int error = errno;
        ::unlink(temporary.c_str());
        throwSystemError("write " + temporary.string(), error);
      }
      done += static_cast<size_t>(written);
    }
    if (::fsync(fd.get()) != 0) throwSystemError("fsync " + temporary.string());
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    int error = errno;
    ::unlink(temporary.c_str());
    throwSystemError("rename to " + path.string(), error);
  }
  UniqueFd directory(::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (directory) ::fsync(directory.get());
}

Datastore::Datastore(fs::path root) : root_(std::move(root)) {
  for (const char* sub : {"", ".templates", ".iso", ".config"}) {
    fs::path directory = root_ / sub;
    if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST)
      throwSystemError("mkdir " + directory.string());
  }
}

fs::path Datastore::vmDirectory(const std::string& name) const {
  if (!isValidVmName(name)) {
    throw DatastoreError("invalid VM name '" + name + "': letters, digits, '.', '_' and '-', at most 64");
  }
  return root_ / name;
}

fs::path Datastore::configPath(const std::string& name) const {
  return vmDirectory(name) / (name + ".conf");
}

bool Datastore::exists(const std::string& name) const {
  return fs::exists(configPath(name));
}

std::vector<std::string> Datastore::list() const {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(root_)) {
    std::string name = entry.path().filename();
    if (entry.is_directory() && isValidVmName(name) && fs::exists(entry.path() / (name + ".conf"))) {
      names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

VmConfig Datastore::load(const std::string& name) const {
  if (!exists(name)) throw DatastoreError("no VM named '" + name + "' in " + root_.string());
  return loadVmConfig(configPath(name));
}

fs::path Datastore::diskPath(const std::string& name, const DiskConfig& disk) const {
  return disk.dev == "custom" ? fs::path(disk.name) : vmDirectory(name) / disk.name;
}

std::vector<std::string> Datastore::create(const std::string& name, const CreateOptions& options) {
  fs::path directory = vmDirectory(name);
  if (fs::exists(directory)) throw DatastoreError("VM '" + name + "' already exists");
  if (!isValidVmName(options.templateName))
    throw DatastoreError("invalid template name '" + options.templateName + "'");
  fs::path templates = options.templates.empty() ? root_ / ".templates" : options.templates;
  fs::path templatePath = templates / (options.templateName + ".conf");
  std::ifstream file(templatePath);
  if (!file) throw DatastoreError("no template '" + options.templateName + "' in " + templates.string());
  std::stringstream text;
  text << file.rdbuf();
  VmConfig config = parseVmConfig(text.str(), templatePath);
  auto entries = config.entries;
  auto set = [&](const std::string& key, const std::string& value) {
    for (auto& entry : entries) {
      if (entry.first == key) {
        entry.second = value;
        return;
      }
    }
    entries.emplace_back(key, value);
  };
  if (!options.cpus.empty()) set("cpu", options.cpus);
  if (!options.memory.empty()) set("memory", options.memory);
  if (!options.diskSize.empty()) set("disk0_size", options.diskSize);
  // Validate the result before anything touches the disk.
  std::string configText = formatVmConfig(entries);
  VmConfig created = parseVmConfig(configText, name + ".conf");

  if (::mkdir(directory.c_str(), 0700) != 0) throwSystemError("mkdir " + directory.string());
  try {
    for (const auto& [index, disk] : created.disks) {
      if (disk.dev == "custom") continue;
      fs::path image = diskPath(name, disk);
      UniqueFd fd(::open(image.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (!fd) throwSystemError("create " + image.string());
      uint64_t size = disk.sizeBytes != 0 ? disk.sizeBytes : (20ull << 30);
      if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) throwSystemError("size " + image.string());
    }
    writeFileAtomically(configPath(name), configText);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(directory, ignored);
    throw;
  }
  return created.warnings;
}

void Datastore::destroy(const std::string& name) {
  if (!exists(name)) throw DatastoreError("no VM named '" + name + "'");
  fs::remove_all(vmDirectory(name));
}

void Datastore::rename(const std::string& from, const std::string& to) {
  if (!exists(from)) throw DatastoreError("no VM named '" + from + "'");
  if (fs::exists(vmDirectory(to))) throw DatastoreError("VM '" + to + "' already exists");
  fs::rename(vmDirectory(from), vmDirectory(to));
  fs::rename(vmDirectory(to) / (from + ".conf"), configPath(to));
}

void copyFileSparse(const fs::path& from, const fs::path& to) {
  UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) throwSystemError("open " + from.string());
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out) throwSystemError("create " + to.string());
  struct stat st {};
  checkSyscall(::fstat(in.get(), &st), "fstat");
  checkSyscall(::ftruncate(out.get(), st.st_size), "ftruncate");
  std::vector<char> block(1 << 16);
  for (off_t offset = 0; offset < st.st_size;) {
    ssize_t count = ::pread(in.get(), block.data(), block.size(), offset);
    if (count <= 0) break;
    bool zero = std::all_of(block.begin(), block.begin() + count, [](char c) { return c == 0; });
    if (!zero && ::pwrite(out.get(), block.data(), static_cast<size_t>(count), offset) != count) {
      throwSystemError("write " + to.string());
    }
    offset += count;
  }
  checkSyscall(::fsync(out.get()), "fsync");
}

void Datastore::clone(const std::string& from, const std::string& to) {
  VmConfig config = load(from);
  fs::path target = vmDirectory(to);
  if (fs::exists(target)) throw DatastoreError("VM '" + to + "' already exists");
  if (::mkdir(target.c_str(), 0700) != 0) throwSystemError("mkdir " + target.string());
  try {
    for (const auto& [index, disk] : config.disks) {
      if (disk.dev == "custom") continue;  // Not ours to copy: the clone shares it.
      copyFileSparse(diskPath(from, disk), diskPath(to, disk));
    }
    // A clone must not share its identity: drop uuid and MAC addresses.
    std::vector<std::pair<std::string, std::string>> entries;
    for (const auto& entry : config.entries) {
      if (entry.first == "uuid" || entry.first.find("_mac") != std::string::npos) continue;
      entries.push_back(entry);
    }
    writeFileAtomically(configPath(to), formatVmConfig(entries));
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(target, ignored);
    throw;
  }
}

std::string Datastore::addDisk(const std::string& name, const std::string& size, const std::string& type) {
  VmConfig config = load(name);
  int index = 0;
  while (config.disks.count(index)) ++index;
  uint64_t bytes = 0;
  try {
    bytes = parseMemorySize(size);
  } catch (const ConfigError& error) {
    throw DatastoreError(std::string("disk size: ") + error.what());
  }
  std::string file = fmt::format("disk{}.img", index);
  auto entries = config.entries;
  entries.emplace_back(fmt::format("disk{}_type", index), type);
  entries.emplace_back(fmt::format("disk{}_name", index), file);
  entries.emplace_back(fmt::format("disk{}_size", index), size);
  std::string text = formatVmConfig(entries);
  parseVmConfig(text, configPath(name));
  fs::path image = vmDirectory(name) / file;
  UniqueFd fd(::open(image.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) throwSystemError("create " + image.string());
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) throwSystemError("size " + image.string());
  writeFileAtomically(configPath(name), text);
  return fmt::format("disk{}", index);
}

std::string Datastore::addNetwork(const std::string& name, const std::string& vmSwitch) {
  VmConfig config = load(name);
  int index = 0;
  while (config.networks.count(index)) ++index;
  auto entries = config.entries;
  entries.emplace_back(fmt::format("network{}_type", index), "virtio-net");
  entries.emplace_back(fmt::format("network{}_switch", index), vmSwitch);
  writeConfig(name, formatVmConfig(entries));
  return fmt::format("network{}", index);
}

void Datastore::writeConfig(const std::string& name, const std::string& text) {
  if (!exists(name)) throw DatastoreError("no VM named '" + name + "'");
  parseVmConfig(text, configPath(name));  // Refuse before replacing.
  writeFileAtomically(configPath(name), text);
}

void Datastore::setConfigValues(const std::string& name,
                                const std::vector<std::pair<std::string, std::string>>& values) {
  auto entries = load(name).entries;
  for (const auto& [key, value] : values) {
    auto found =
        std::find_if(entries.begin(), entries.end(), [&](const auto& entry) { return entry.first == key; });
    if (found != entries.end()) {
      found->second = value;
    } else {
      entries.emplace_back(key, value);
    }
  }
  writeConfig(name, formatVmConfig(entries));
}

fs::path Datastore::systemConfigPath() const {
  return root_ / ".config" / "system.conf";
}

Datastore::Autostart Datastore::autostart() const {
  SystemConfig config = SystemConfig::load(systemConfigPath());
  Autostart result;
  for (const auto& name : config.words("vm_list")) {
    if (!isValidVmName(name))
      throw DatastoreError(systemConfigPath().string() + ": vm_list: invalid VM name '" + name + "'");
    result.names.push_back(name);
  }
  if (auto delay = config.get("vm_delay")) {
    try {
      result.delaySeconds = static_cast<unsigned>(std::stoul(*delay));
    } catch (const std::exception&) {
      throw DatastoreError(systemConfigPath().string() + ": vm_delay: expected seconds");
    }
  }
  return result;
}

void Datastore::installTemplate(const std::string& name, const std::string& text) {
  if (!isValidVmName(name)) throw DatastoreError("invalid template name '" + name + "'");
  parseVmConfig(text, name + ".conf");
  writeFileAtomically(root_ / ".templates" / (name + ".conf"), text);
}

}  // namespace cellvisor
