// The datastore's `.config/system.conf`, in vm-bhyve's format and with its
// keys: autostart (vm_list, vm_delay), extra datastores (datastore_list,
// path_NAME) and virtual switches (switch_list, type_NAME, ports_NAME,
// addr_NAME, mtu_NAME, bridge_NAME), and cellvisor's vm_uid_range
// (vmmd/vm-identities.h). Unknown keys are errors naming file,
// line and key; saves are crash-safe.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cellvisor {

class SystemConfig {
 public:
  // Reads `path` (a missing file is an empty config). Throws DatastoreError.
  static SystemConfig load(const std::filesystem::path& path);

  std::optional<std::string> get(const std::string& key) const;
  // A space-separated list (vm_list, switch_list, ports_NAME...).
  std::vector<std::string> words(const std::string& key) const;
  void set(const std::string& key, const std::string& value);
  void setWords(const std::string& key, const std::vector<std::string>& words);
  void erase(const std::string& key);
  // Writes the file back (temporary file, fsync, rename).
  void save() const;

 private:
  std::filesystem::path path_;
  std::vector<std::pair<std::string, std::string>> entries_;
};

}  // namespace cellvisor
