// Prints each device server's sandbox policy: how many syscalls it allows
// (the goal is at most 40 per server) and which, with argument filters.
//
//   build/tools/policy-count [--list]
#include <cstdio>
#include <cstring>

#include "host/server-kind.h"
#include "servers/runtime/sandbox-policy.h"

int main(int argc, char** argv) {
  bool list = argc > 1 && std::strcmp(argv[1], "--list") == 0;
  int worst = 0;
  for (const cellvisor::ServerKind* kind : cellvisor::serverKinds()) {
    auto policy = cellvisor::loadServerPolicy(kind->policyName, kind->policyText);
    auto syscalls = policy.syscalls();
    worst = std::max(worst, static_cast<int>(syscalls.size()));
    std::printf("%-24s %2zu syscalls\n", kind->policyName.c_str(), syscalls.size());
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
