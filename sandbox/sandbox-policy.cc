#include "sandbox/sandbox-policy.h"

#include <fmt/format.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <sstream>
#include <stdexcept>

#include "policies.h"

namespace cellvisor {
namespace {

// The header of KVM's variable-length tables: the ioctl number encodes its
// size, 8 bytes (see core/kvm/kvm-abi.h for why not the uapi structs').
struct KvmTableHeader {
  uint32_t count;
  uint32_t padding;
};

// Named constants a policy may use in conditions: the core's KVM requests
// by name, so its policy reads as what it allows.
std::optional<uint64_t> constant(std::string_view word) {
  static const std::pair<std::string_view, uint64_t> NAMES[] = {
      {"FIONBIO", FIONBIO},
      {"FIOCLEX", FIOCLEX},
      {"PROT_EXEC", PROT_EXEC},
      {"PROT_WRITE", PROT_WRITE},
      {"KVM_RUN", KVM_RUN},
      {"KVM_IRQ_LINE", KVM_IRQ_LINE},
      {"KVM_SIGNAL_MSI", KVM_SIGNAL_MSI},
      {"KVM_IRQFD", KVM_IRQFD},
      {"KVM_IOEVENTFD", KVM_IOEVENTFD},
      {"KVM_SET_USER_MEMORY_REGION", KVM_SET_USER_MEMORY_REGION},
      {"KVM_SET_GSI_ROUTING", _IOW(KVMIO, 0x6a, KvmTableHeader)},
      {"KVM_GET_REGS", KVM_GET_REGS},
      {"KVM_GET_SREGS", KVM_GET_SREGS},
      {"KVM_GET_MP_STATE", KVM_GET_MP_STATE},
      {"KVM_SET_MP_STATE", KVM_SET_MP_STATE},
      {"KVM_GET_LAPIC", KVM_GET_LAPIC},
  };
  for (const auto& [name, value] : NAMES) {
    if (word == name) return value;
  }
  // The process that enters the policy (it starts no other): signals to
  // its own threads only.
  if (word == "SELF_PID") return static_cast<uint64_t>(::getpid());
  uint64_t value = 0;
  int base = 10;
  if (word.rfind("0x", 0) == 0) {
    word.remove_prefix(2);
    base = 16;
  }
  auto [end, error] = std::from_chars(word.data(), word.data() + word.size(), value, base);
  if (error != std::errc() || end != word.data() + word.size()) return std::nullopt;
  return value;
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream stream(line);
  std::vector<std::string> out;
  for (std::string word; stream >> word;) out.push_back(word);
  return out;
}

void parseInto(SandboxPolicy& policy, std::string_view name, std::string_view text, int depth) {
  if (depth > 4) throw std::invalid_argument(fmt::format("{}: includes nested too deep", name));
  std::istringstream stream{std::string(text)};
  std::string line;
  for (int number = 1; std::getline(stream, line); ++number) {
    auto fail = [&](const std::string& why) {
      return std::invalid_argument(fmt::format("{}:{}: {}", name, number, why));
    };
    // A misspelt call is refused here, where the file and line are known,
    // not when a server enters its sandbox.
    auto requireSyscall = [&](const std::string& call) {
      if (seccomp_syscall_resolve_name(call.c_str()) == __NR_SCMP_ERROR)
        throw fail("no system call named " + call);
    };
    auto tokens = words(line.substr(0, line.find('#')));
    if (tokens.empty()) continue;
    if (tokens[0] == "include" && tokens.size() == 2) {
      auto found = std::find_if(std::begin(policies::EMBEDDED_FILES), std::end(policies::EMBEDDED_FILES),
                                [&](const auto& file) { return file.name == tokens[1]; });
      if (found == std::end(policies::EMBEDDED_FILES)) throw fail("no policy named " + tokens[1]);
      parseInto(policy, found->name, found->text, depth + 1);
    } else if (tokens[0] == "allow" && tokens.size() >= 2) {
      auto ifAt = std::find(tokens.begin(), tokens.end(), "if");
      if (ifAt == tokens.end()) {
        for (size_t i = 1; i < tokens.size(); ++i) {
          requireSyscall(tokens[i]);
          policy.rules.push_back({tokens[i], std::nullopt});
        }
        continue;
      }
      // allow NAME if argN [& MASK] == VALUE
      std::vector<std::string> condition(ifAt + 1, tokens.end());
      if (ifAt - tokens.begin() != 2 || condition.empty() || condition[0].rfind("arg", 0) != 0) {
        throw fail("expected: allow NAME if argN [& MASK] == VALUE");
      }
      ArgumentCondition parsed{0, ~0ull, 0};
      // A digit, not a constant: "argPROT_EXEC" is a typo, not argument 4.
      std::string index = condition[0].substr(3);
      if (index.size() != 1 || index[0] < '0' || index[0] > '5') throw fail("argument index must be 0-5");
      parsed.index = static_cast<unsigned>(index[0] - '0');
      size_t at = 1;
      if (condition.size() == 5 && condition[1] == "&") {
        auto mask = constant(condition[2]);
        if (!mask) throw fail("bad mask " + condition[2]);
        parsed.mask = *mask;
        at = 3;
      }
      if (condition.size() != at + 2 || condition[at] != "==") throw fail("expected == VALUE");
      auto value = constant(condition[at + 1]);
      if (!value) throw fail("bad value " + condition[at + 1]);
      parsed.value = *value;
      requireSyscall(tokens[1]);
      policy.rules.push_back({tokens[1], parsed});
    } else if (tokens[0] == "rlimit" && tokens.size() == 3) {
      // A later line for the same limit replaces an included one.
      std::erase_if(policy.limits, [&](const ResourceLimit& limit) { return limit.name == tokens[1]; });
      if (tokens[2] == "handed") {
        policy.limits.push_back({tokens[1], std::nullopt});
      } else if (tokens[2].rfind("handed+", 0) == 0) {
        auto extra = constant(tokens[2].substr(7));
        if (!extra) throw fail("bad limit " + tokens[2]);
        policy.limits.push_back({tokens[1], std::nullopt, *extra});
      } else {
        auto value = constant(tokens[2]);
        if (!value) throw fail("bad limit " + tokens[2]);
        policy.limits.push_back({tokens[1], *value});
      }
    } else {
      throw fail("expected include, allow or rlimit");
    }
  }
}

[[maybe_unused]] std::string_view loadEmbeddedText(std::string_view name) {
  for (const auto& file : policies::EMBEDDED_FILES) {
    if (file.name == name) return file.text;
  }
  throw std::invalid_argument(fmt::format("no sandbox policy named {}", name));
}

}  // namespace

std::vector<std::string> SandboxPolicy::syscalls() const {
  std::set<std::string> names;
  for (const auto& rule : rules) names.insert(rule.name);
  return {names.begin(), names.end()};
}

SandboxPolicy parsePolicy(std::string_view name, std::string_view text) {
  SandboxPolicy policy;
  policy.name = std::string(name);
  parseInto(policy, name, text, 0);
  return policy;
}

SandboxPolicy loadEnforcedPolicy(std::string_view name, std::string_view text) {
  SandboxPolicy policy = parsePolicy(name, text);
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizer runtime lives inside the server and makes calls of its own.
  parseInto(policy, "sanitizer-runtime.policy", loadEmbeddedText("sanitizer-runtime.policy"), 1);
#endif
  return policy;
}

SandboxMode parseSandboxMode(std::string_view text) {
  if (text == "off") return SandboxMode::OFF;
  if (text == "log") return SandboxMode::LOG;
  if (text == "enforce" || text.empty()) return SandboxMode::ENFORCE;
  throw std::invalid_argument(fmt::format("sandbox mode must be off, log or enforce, not '{}'", text));
}

}  // namespace cellvisor
