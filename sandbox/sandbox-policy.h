// Sandbox policies: a small, reviewable text format kept beside each
// server's code (servers/NAME/NAME.policy), embedded in its binary and its
// launch descriptor at build time; shared fragments live in the runtime.
//
//   include common-device.policy
//   allow read write close                 syscalls, by name
//   allow ioctl if arg1 == FIONBIO         one argument compared
//   allow mmap if arg2 & PROT_EXEC == 0    ... or masked
//   rlimit core 0                          resource limits
//   rlimit nofile handed                   just the fds the server holds
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cellvisor {

struct ArgumentCondition {
  unsigned index;
  uint64_t mask;  // ~0 for a plain comparison.
  uint64_t value;
};

struct SyscallRule {
  std::string name;
  std::optional<ArgumentCondition> condition;
};

struct ResourceLimit {
  std::string name;               // core, nofile, ...
  std::optional<uint64_t> value;  // Empty for "handed".
  uint64_t beyondHanded = 0;      // "handed+N": room for N descriptors the server will make.
};

struct SandboxPolicy {
  std::string name;
  std::vector<SyscallRule> rules;
  std::vector<ResourceLimit> limits;
  // Distinct syscall names the policy allows.
  std::vector<std::string> syscalls() const;
};

// Parses policy `name` with its includes (the runtime's fragments, e.g.
// common-device.policy); throws std::invalid_argument naming file, line and
// problem.
SandboxPolicy parsePolicy(std::string_view name, std::string_view text);
// A server's whole policy as it is enforced: parsePolicy, plus what the
// sanitizer runtime needs in a sanitizer build.
SandboxPolicy loadEnforcedPolicy(std::string_view name, std::string_view text);

enum class SandboxMode { OFF, LOG, ENFORCE };
// "off", "log" or "enforce"; throws std::invalid_argument otherwise.
SandboxMode parseSandboxMode(std::string_view text);

}  // namespace cellvisor
