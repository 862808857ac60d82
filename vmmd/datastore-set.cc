#include "vmmd/datastore-set.h"

#include <algorithm>

#include "core/machine/machine-config.h"
#include "vmmd/system-config.h"

namespace cellvisor {

DatastoreSet::DatastoreSet(std::filesystem::path defaultRoot) {
  stores_["default"] = std::make_unique<Datastore>(std::move(defaultRoot));
  order_.push_back("default");
  SystemConfig config = SystemConfig::load(primary().systemConfigPath());
  for (const auto& name : config.words("datastore_list")) {
    if (name == "default") continue;
    auto path = config.get("path_" + name);
    if (!isValidVmName(name) || !path || !std::filesystem::path(*path).is_absolute()) {
      throw DatastoreError(primary().systemConfigPath().string() + ": datastore '" + name + "' needs path_" +
                           name + " (an absolute path)");
    }
    stores_[name] = std::make_unique<Datastore>(*path);
    order_.push_back(name);
  }
}

Datastore& DatastoreSet::named(const std::string& name) {
  auto found = stores_.find(name);
  if (found == stores_.end()) throw DatastoreError("no datastore named '" + name + "'");
  return *found->second;
}

bool DatastoreSet::anyHolds(const std::string& vm) const {
  return std::any_of(stores_.begin(), stores_.end(),
                     [&](const auto& entry) { return entry.second->exists(vm); });
}

Datastore& DatastoreSet::holding(const std::string& vm) {
  for (const auto& name : order_) {
    if (stores_.at(name)->exists(vm)) return *stores_.at(name);
  }
  throw DatastoreError("no VM named '" + vm + "'");
}

std::string DatastoreSet::nameOf(const Datastore& store) const {
  for (const auto& [name, candidate] : stores_) {
    if (candidate.get() == &store) return name;
  }
  return "";
}

void DatastoreSet::add(const std::string& name, const std::filesystem::path& path) {
  if (!isValidVmName(name)) throw DatastoreError("invalid datastore name '" + name + "'");
  if (stores_.count(name)) throw DatastoreError("datastore '" + name + "' exists");
  if (!path.is_absolute())
    throw DatastoreError("a datastore needs an absolute path, not '" + path.string() + "'");
  for (const auto& [other, store] : stores_) {
    if (std::filesystem::weakly_canonical(store->root()) == std::filesystem::weakly_canonical(path)) {
      throw DatastoreError(path.string() + " is already datastore '" + other + "'");
    }
  }
  auto store = std::make_unique<Datastore>(path);
  for (const auto& vm : store->list()) {
    if (anyHolds(vm))
      throw DatastoreError(path.string() + " holds a VM named '" + vm + "', and so does another datastore");
  }
  SystemConfig config = SystemConfig::load(primary().systemConfigPath());
  auto names = config.words("datastore_list");
  if (names.empty()) names.push_back("default");
  names.push_back(name);
  config.setWords("datastore_list", names);
  config.set("path_" + name, path.string());
  config.save();
  stores_[name] = std::move(store);
  order_.push_back(name);
}

void DatastoreSet::remove(const std::string& name) {
  if (name == "default") throw DatastoreError("the default datastore cannot be removed");
  named(name);
  SystemConfig config = SystemConfig::load(primary().systemConfigPath());
  auto names = config.words("datastore_list");
  std::erase(names, name);
  config.setWords("datastore_list", names.size() > 1 ? names : std::vector<std::string>{});
  config.erase("path_" + name);
  config.save();
  stores_.erase(name);
  std::erase(order_, name);
}

}  // namespace cellvisor
