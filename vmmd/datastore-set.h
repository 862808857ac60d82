// All the datastores vmmd serves, as vm-bhyve keeps them: "default" is the
// one vmmd was started on, and its .config/system.conf names the others
// (datastore_list="default other", path_other="/path"). VM names are unique
// across all of them; templates, media and switches live in the default one.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vmmd/datastore.h"

namespace cellvisor {

class DatastoreSet {
 public:
  // Opens the default datastore and every one its system.conf lists.
  explicit DatastoreSet(std::filesystem::path defaultRoot);

  Datastore& primary() { return *stores_.at("default"); }
  // Names in vm-bhyve's order: default first, then as listed.
  std::vector<std::string> names() const { return order_; }
  Datastore& named(const std::string& name);
  // The datastore holding VM `vm`; throws DatastoreError("no VM named ...").
  Datastore& holding(const std::string& vm);
  bool anyHolds(const std::string& vm) const;
  std::string nameOf(const Datastore& store) const;

  // Registers `path` (absolute; created if missing) as datastore `name`.
  void add(const std::string& name, const std::filesystem::path& path);
  // Forgets datastore `name`; its files stay where they are.
  void remove(const std::string& name);

 private:
  std::map<std::string, std::unique_ptr<Datastore>> stores_;
  std::vector<std::string> order_;
};

}  // namespace cellvisor
