#include "host/server-kind.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <stdexcept>

namespace cellvisor {
namespace {

std::vector<std::unique_ptr<ServerKind>>& registry() {
  static std::vector<std::unique_ptr<ServerKind>> kinds;
  return kinds;
}

}  // namespace

ServerKindRegistration::ServerKindRegistration(ServerKind kind) {
  if (findServerKind(kind.emulation) != nullptr) {
    throw std::logic_error("device server kind " + kind.emulation + " registered twice");
  }
  registry().push_back(std::make_unique<ServerKind>(std::move(kind)));
}

const ServerKind* findServerKind(std::string_view emulation) {
  for (const auto& kind : registry()) {
    if (kind->emulation == emulation) return kind.get();
  }
  return nullptr;
}

const ServerKind* findServerKindFor(ConfigRole role, std::string_view type) {
  for (const auto& kind : registry()) {
    if (kind->role == role && kind->configType == type) return kind.get();
  }
  return nullptr;
}

std::vector<const ServerKind*> serverKinds() {
  std::vector<const ServerKind*> kinds;
  for (const auto& kind : registry()) kinds.push_back(kind.get());
  std::sort(kinds.begin(), kinds.end(), [](auto* a, auto* b) { return a->emulation < b->emulation; });
  return kinds;
}

std::string findServerBinary(const std::string& folder, std::string binary) {
  if (binary.empty()) binary = folder + "-server";
  const std::string& name = folder;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  for (const auto& candidate :
       {self / ".." / "servers" / folder / binary, self / ".." / ".." / "servers" / folder / binary,
        self / ".." / "libexec" / "cellvisor" / binary, self / binary}) {
    if (::access(candidate.c_str(), X_OK) == 0) return std::filesystem::canonical(candidate);
  }
  throw std::runtime_error("cannot find the " + name + " device server next to " + self.string());
}

}  // namespace cellvisor
