// A device's slot options as bhyve writes them after `-s N,DEVICE,`: a first
// positional item (a disk path, a tap name), then KEY or KEY=VALUE items, all
// comma-separated. Each device names and checks its own keys.
#pragma once

#include <charconv>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace cellvisor {

struct SlotOptions {
  std::string first;
  std::vector<std::pair<std::string, std::string>> settings;  // KEY -> VALUE ("" for a bare KEY)
};

inline SlotOptions splitSlotOptions(const std::string& text) {
  SlotOptions options;
  std::stringstream stream(text);
  std::string item;
  bool first = true;
  while (std::getline(stream, item, ',')) {
    if (first) {
      first = false;
      options.first = item;
      continue;
    }
    auto equals = item.find('=');
    options.settings.emplace_back(item.substr(0, equals),
                                  equals == std::string::npos ? "" : item.substr(equals + 1));
  }
  return options;
}

// VALUE of `key` as a number; throws std::invalid_argument naming `device`
// and `key` when it is not one.
template <typename T>
T slotOptionNumber(const std::string& device, const std::string& key, const std::string& text) {
  T value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) {
    throw std::invalid_argument(device + ": " + key + ": not a number: '" + text + "'");
  }
  return value;
}

}  // namespace cellvisor
