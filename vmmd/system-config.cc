#include "vmmd/system-config.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

#include "vmmd/datastore.h"
#include "vmmd/vm-config.h"

namespace cellvisor {
namespace {

bool knownKey(const std::string& key) {
  static const std::regex known(
      R"((vm_list|vm_delay|datastore_list|switch_list|vm_uid_range)|(path|type|ports|addr|mtu|bridge)_[A-Za-z0-9][A-Za-z0-9._-]*)");
  return std::regex_match(key, known);
}

std::string trim(std::string text, const char* characters) {
  text.erase(0, text.find_first_not_of(characters));
  auto last = text.find_last_not_of(characters);
  text.erase(last == std::string::npos ? 0 : last + 1);
  return text;
}

}  // namespace

SystemConfig SystemConfig::load(const std::filesystem::path& path) {
  SystemConfig config;
  config.path_ = path;
  std::ifstream file(path);
  std::string line;
  for (int number = 1; std::getline(file, line); ++number) {
    line = line.substr(0, line.find('#'));
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto equals = line.find('=');
    if (equals == std::string::npos) {
      throw DatastoreError(fmt::format("{}:{}: expected key=\"value\"", path.string(), number));
    }
    std::string key = trim(line.substr(0, equals), " \t");
    std::string value = trim(line.substr(equals + 1), " \t\r");
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    if (!knownKey(key))
      throw DatastoreError(fmt::format("{}:{}: {}: unknown configuration key", path.string(), number, key));
    if (value.find('"') != std::string::npos) {
      throw DatastoreError(
          fmt::format("{}:{}: {}: a value may not contain '\"'", path.string(), number, key));
    }
    config.entries_.emplace_back(key, value);
  }
  return config;
}

std::optional<std::string> SystemConfig::get(const std::string& key) const {
  for (const auto& [name, value] : entries_) {
    if (name == key) return value;
  }
  return std::nullopt;
}

std::vector<std::string> SystemConfig::words(const std::string& key) const {
  std::vector<std::string> result;
  std::istringstream text(get(key).value_or(""));
  for (std::string word; text >> word;) result.push_back(word);
  return result;
}

void SystemConfig::set(const std::string& key, const std::string& value) {
  if (!knownKey(key)) throw DatastoreError(key + ": unknown configuration key");
  if (value.find_first_of("\"\n") != std::string::npos) throw DatastoreError(key + ": bad value");
  auto found =
      std::find_if(entries_.begin(), entries_.end(), [&](const auto& entry) { return entry.first == key; });
  if (found != entries_.end()) {
    found->second = value;
  } else {
    entries_.emplace_back(key, value);
  }
}

void SystemConfig::setWords(const std::string& key, const std::vector<std::string>& words) {
  std::string joined;
  for (const auto& word : words) joined += (joined.empty() ? "" : " ") + word;
  if (joined.empty()) {
    erase(key);
  } else {
    set(key, joined);
  }
}

void SystemConfig::erase(const std::string& key) {
  std::erase_if(entries_, [&](const auto& entry) { return entry.first == key; });
}

void SystemConfig::save() const {
  std::filesystem::create_directories(path_.parent_path());
  writeFileAtomically(path_, formatVmConfig(entries_));
}

}  // namespace cellvisor
