// Prints the core's and each device server's sandbox policy: how many
// syscalls it allows (the goal is at most 40 each) and which, with argument
// filters.
//
//   build/tools/policy-count [--list]
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "host/server-kind.h"
#include "sandbox/sandbox-policy.h"
#include "vmm-core-policy.h"

int main(int argc, char** argv) {
  bool list = argc > 1 && std::strcmp(argv[1], "--list") == 0;
  int worst = 0;
  std::vector<std::pair<std::string, std::string_view>> policies = {
      {"vmm-core.policy", cellvisor::policies::VMM_CORE_POLICY}};
  for (const cellvisor::ServerKind* kind : cellvisor::serverKinds()) {
    // Kinds sharing a server (ahci, ahci-hd, ahci-cd) share its policy: once.
    if (policies.back().first != kind->policyName) policies.emplace_back(kind->policyName, kind->policyText);
  }
  for (const auto& [name, text] : policies) {
    auto policy = cellvisor::loadEnforcedPolicy(name, text);
    auto syscalls = policy.syscalls();
    worst = std::max(worst, static_cast<int>(syscalls.size()));
    std::printf("%-24s %2zu syscalls\n", name.c_str(), syscalls.size());
    if (!list) continue;
    for (const auto& rule : policy.rules) {
      if (rule.condition) {
        std::printf("    %-18s if arg%u & %#llx == %#llx\n", rule.name.c_str(), rule.condition->index,
                    static_cast<unsigned long long>(rule.condition->mask),
                    static_cast<unsigned long long>(rule.condition->value));
      } else {
        std::printf("    %s\n", rule.name.c_str());
      }
    }
  }
  return worst <= 40 && !cellvisor::serverKinds().empty() ? 0 : 1;
}
