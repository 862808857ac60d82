// A datastore as vm-bhyve lays it out: a directory holding one directory per
// VM (NAME/NAME.conf, its disk images, logs) and the dot-directories
// .templates/, .iso/ and .config/. Every path comes from a validated VM name;
// every write of a config is crash-safe (temporary file, fsync, rename).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "vmmd/vm-config.h"

namespace cellvisor {

class DatastoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CreateOptions {
  std::string templateName = "default";
  std::string diskSize;             // -s: overrides disk0_size
  std::string cpus;                 // -c
  std::string memory;               // -m
  std::filesystem::path templates;  // where templates are; empty: this datastore's .templates
};

class Datastore {
 public:
  // Opens (creating if needed, mode 0700) the datastore at `root`.
  explicit Datastore(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }
  std::vector<std::string> list() const;
  bool exists(const std::string& name) const;
  // NAME's directory; throws DatastoreError for a name that is not valid.
  std::filesystem::path vmDirectory(const std::string& name) const;
  std::filesystem::path configPath(const std::string& name) const;
  VmConfig load(const std::string& name) const;
  // Path of disk `disk` of VM `name` (its own directory unless custom).
  std::filesystem::path diskPath(const std::string& name, const DiskConfig& disk) const;

  // vm-bhyve's `vm create`: config from a template, sparse disk images.
  // Returns the template's warnings (keys accepted but not acted on).
  std::vector<std::string> create(const std::string& name, const CreateOptions& options);
  void destroy(const std::string& name);
  void rename(const std::string& from, const std::string& to);
  // Copies the VM with its disks (holes stay holes) under a new name.
  void clone(const std::string& from, const std::string& to);
  // Adds diskN (the next free N): a sparse image of `size` and its config lines.
  // vm-bhyve's `vm add -d disk -t TYPE -s SIZE`: a new image, and its keys.
  std::string addDisk(const std::string& name, const std::string& size,
                      const std::string& type = "virtio-blk");
  // Adds networkN (the next free N): a virtio-net NIC on switch `vmSwitch`.
  std::string addNetwork(const std::string& name, const std::string& vmSwitch);
  // Replaces NAME.conf after validating the new text.
  void writeConfig(const std::string& name, const std::string& text);
  // Sets keys in NAME.conf (replacing or appending), validated, crash-safe.
  void setConfigValues(const std::string& name,
                       const std::vector<std::pair<std::string, std::string>>& values);
  // vm-bhyve's autostart settings in .config/system.conf: vm_list="a b"
  // (start order) and vm_delay="N" (seconds between starts).
  struct Autostart {
    std::vector<std::string> names;
    unsigned delaySeconds = 0;
  };
  Autostart autostart() const;
  std::filesystem::path systemConfigPath() const;
  // Installs a template file (vmctl init copies the shipped ones).
  void installTemplate(const std::string& name, const std::string& text);

 private:
  std::filesystem::path root_;
};

// Writes `contents` to `path` so that a crash leaves either the old or the
// new file, never a mix: temporary file, fsync, rename, fsync the directory.
void writeFileAtomically(const std::filesystem::path& path, const std::string& contents);
// Copies `from` to a new file `to` block by block, leaving all-zero blocks
// as holes, and fsyncs it. Throws std::system_error.
void copyFileSparse(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace cellvisor
