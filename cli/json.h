// JSON output for vmctl's --json listings (flat objects; no library needed
// to write them, and scripts read them with jq).
#pragma once

#include <fmt/format.h>

#include <string>

namespace cellvisor::cli {

inline std::string jsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", c);
      continue;
    }
    out += c;
  }
  return out + "\"";
}

// Prints `items` as a JSON array, `format(item)` giving each object.
template <typename List, typename Format>
void printJsonArray(const List& items, Format&& format) {
  std::string out = "[";
  bool first = true;
  for (auto item : items) {
    out += (first ? "" : ",") + format(item);
    first = false;
  }
  fmt::print("{}]\n", out);
}

}  // namespace cellvisor::cli
