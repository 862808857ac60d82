// The sandbox policy format: allow lists, argument conditions, resource
// limits, includes of the embedded policies, and errors that name the file
// and line a reviewer has to look at.
#include "sandbox/sandbox-policy.h"

#include <gtest/gtest.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "host/server-kind.h"
#include "sandbox/sandbox.h"

namespace cellvisor {
namespace {

// A shipped policy by name: a server kind's own, or a runtime fragment.
SandboxPolicy policyOf(const std::string& name) {
  for (const ServerKind* kind : serverKinds()) {
    if (kind->policyName == name) return parsePolicy(kind->policyName, kind->policyText);
  }
  SandboxPolicy fragment = parsePolicy(name, "include " + name + "\n");
  return fragment;
}

bool allows(const SandboxPolicy& policy, const std::string& name) {
  auto names = policy.syscalls();
  return std::find(names.begin(), names.end(), name) != names.end();
}

// The message of the std::invalid_argument that parsing `text` throws.
std::string parseError(std::string_view text, std::string_view name = "test.policy") {
  try {
    parsePolicy(name, text);
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  ADD_FAILURE() << "accepted: " << text;
  return "";
}

TEST(SandboxPolicy, AllowListsEveryNameInOrder) {
  auto policy = parsePolicy("p.policy", "allow read write\nallow close\n");
  EXPECT_EQ(policy.name, "p.policy");
  ASSERT_EQ(policy.rules.size(), 3u);
  EXPECT_EQ(policy.rules[0].name, "read");
  EXPECT_EQ(policy.rules[1].name, "write");
  EXPECT_EQ(policy.rules[2].name, "close");
  for (const auto& rule : policy.rules) EXPECT_FALSE(rule.condition);
  EXPECT_TRUE(policy.limits.empty());
}

TEST(SandboxPolicy, CommentsAndBlankLinesAreIgnored) {
  auto policy = parsePolicy("p.policy",
                            "# a comment\n"
                            "\n"
                            "   \t  \n"
                            "allow read  # trailing comment\n"
                            "  allow   write\t close  \n"
                            "#allow ptrace\n");
  EXPECT_EQ(policy.syscalls(), (std::vector<std::string>{"close", "read", "write"}));
}

TEST(SandboxPolicy, SyscallsAreDistinctAndSorted) {
  auto policy = parsePolicy("p.policy",
                            "allow write read\n"
                            "allow ioctl if arg1 == 1\n"
                            "allow ioctl if arg1 == 2\n"
                            "allow read\n");
  EXPECT_EQ(policy.rules.size(), 5u);
  EXPECT_EQ(policy.syscalls(), (std::vector<std::string>{"ioctl", "read", "write"}));
}

TEST(SandboxPolicy, PlainConditionComparesOneArgument) {
  auto policy = parsePolicy("p.policy", "allow ioctl if arg1 == FIONBIO\nallow fcntl if arg5 == 0x10\n");
  ASSERT_EQ(policy.rules.size(), 2u);
  ASSERT_TRUE(policy.rules[0].condition);
  EXPECT_EQ(policy.rules[0].name, "ioctl");
  EXPECT_EQ(policy.rules[0].condition->index, 1u);
  EXPECT_EQ(policy.rules[0].condition->mask, ~0ull);
  EXPECT_EQ(policy.rules[0].condition->value, uint64_t{FIONBIO});
  ASSERT_TRUE(policy.rules[1].condition);
  EXPECT_EQ(policy.rules[1].condition->index, 5u);
  EXPECT_EQ(policy.rules[1].condition->value, 0x10u);
}

TEST(SandboxPolicy, MaskedConditionKeepsMaskAndValue) {
  auto policy =
      parsePolicy("p.policy", "allow mmap if arg2 & PROT_EXEC == 0\nallow openat if arg2 & 0xff00 == 256\n");
  ASSERT_EQ(policy.rules.size(), 2u);
  ASSERT_TRUE(policy.rules[0].condition);
  EXPECT_EQ(policy.rules[0].condition->index, 2u);
  EXPECT_EQ(policy.rules[0].condition->mask, uint64_t{PROT_EXEC});
  EXPECT_EQ(policy.rules[0].condition->value, 0u);
  ASSERT_TRUE(policy.rules[1].condition);
  EXPECT_EQ(policy.rules[1].condition->mask, 0xff00u);
  EXPECT_EQ(policy.rules[1].condition->value, 256u);
}

TEST(SandboxPolicy, LargestNumbersAreAccepted) {
  auto policy = parsePolicy("p.policy",
                            "allow ioctl if arg0 & 0xffffffffffffffff == 18446744073709551615\n"
                            "rlimit fsize 0xffffffffffffffff\n");
  ASSERT_TRUE(policy.rules[0].condition);
  EXPECT_EQ(policy.rules[0].condition->value, ~0ull);
  ASSERT_TRUE(policy.limits[0].value);
  EXPECT_EQ(*policy.limits[0].value, ~0ull);
}

TEST(SandboxPolicy, ResourceLimitsAreNumbersOrHanded) {
  auto policy = parsePolicy("p.policy", "rlimit core 0\nrlimit nofile handed\nrlimit fsize 0x1000\n");
  ASSERT_EQ(policy.limits.size(), 3u);
  EXPECT_EQ(policy.limits[0].name, "core");
  ASSERT_TRUE(policy.limits[0].value);
  EXPECT_EQ(*policy.limits[0].value, 0u);
  EXPECT_EQ(policy.limits[1].name, "nofile");
  EXPECT_FALSE(policy.limits[1].value) << "handed: the fds the server holds, decided at entry";
  ASSERT_TRUE(policy.limits[2].value);
  EXPECT_EQ(*policy.limits[2].value, 0x1000u);
  EXPECT_TRUE(policy.rules.empty());
}

TEST(SandboxPolicy, CommonDevicePolicyAllowsTheServerBasics) {
  auto policy = policyOf("common-device.policy");
  EXPECT_EQ(policy.name, "common-device.policy");
  for (const char* name : {"read", "write", "close", "epoll_wait", "futex", "mmap", "mprotect", "exit_group",
                           "rt_sigreturn", "ioctl", "clock_gettime"}) {
    EXPECT_TRUE(allows(policy, name)) << name;
  }
  for (const char* name :
       {"open", "openat", "socket", "execve", "fork", "clone", "ptrace", "io_uring_setup"}) {
    EXPECT_FALSE(allows(policy, name)) << name;
  }
  // mmap and mprotect only without PROT_EXEC; ioctl only FIONBIO and FIOCLEX.
  std::vector<uint64_t> ioctls;
  for (const auto& rule : policy.rules) {
    if (rule.name == "mmap" || rule.name == "mprotect") {
      ASSERT_TRUE(rule.condition) << rule.name << " allowed without a condition";
      EXPECT_EQ(rule.condition->index, 2u);
      EXPECT_EQ(rule.condition->mask, uint64_t{PROT_EXEC});
      EXPECT_EQ(rule.condition->value, 0u);
    }
    if (rule.name == "ioctl") {
      ASSERT_TRUE(rule.condition) << "ioctl allowed without a condition";
      EXPECT_EQ(rule.condition->index, 1u);
      EXPECT_EQ(rule.condition->mask, ~0ull);
      ioctls.push_back(rule.condition->value);
    }
  }
  std::sort(ioctls.begin(), ioctls.end());
  std::vector<uint64_t> expected{FIONBIO, FIOCLEX};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(ioctls, expected);

  ASSERT_EQ(policy.limits.size(), 2u);
  EXPECT_EQ(policy.limits[0].name, "core");
  EXPECT_EQ(policy.limits[0].value, std::optional<uint64_t>(0));
  EXPECT_EQ(policy.limits[1].name, "nofile");
  EXPECT_EQ(policy.limits[1].value, std::nullopt);
}

TEST(SandboxPolicy, BlockPolicyIsTheCommonOnePlusIoUringEnter) {
  auto blk = policyOf("virtio-blk.policy");
  auto common = policyOf("common-device.policy");
  EXPECT_EQ(blk.name, "virtio-blk.policy");
  for (const auto& name : common.syscalls()) EXPECT_TRUE(allows(blk, name)) << name << " from the include";
  EXPECT_TRUE(allows(blk, "io_uring_enter"));
  EXPECT_FALSE(allows(blk, "io_uring_setup")) << "no new ring inside the sandbox";
  EXPECT_FALSE(allows(blk, "io_uring_register")) << "no new file in the ring";
  EXPECT_FALSE(allows(blk, "openat"));
  EXPECT_EQ(blk.limits.size(), common.limits.size()) << "limits come with the include";
}

TEST(SandboxPolicy, NetPolicyIncludesTheCommonOne) {
  auto net = policyOf("virtio-net.policy");
  EXPECT_TRUE(allows(net, "writev"));
  EXPECT_TRUE(allows(net, "epoll_wait"));
  EXPECT_FALSE(allows(net, "io_uring_enter"));
  EXPECT_FALSE(allows(net, "socket"));
}

TEST(SandboxPolicy, IncludeInsideATextPolicy) {
  auto policy = parsePolicy("mine.policy", "allow pread64\ninclude common-device.policy\nallow pwrite64\n");
  EXPECT_EQ(policy.name, "mine.policy");
  EXPECT_EQ(policy.rules.front().name, "pread64");
  EXPECT_EQ(policy.rules.back().name, "pwrite64");
  EXPECT_TRUE(allows(policy, "futex"));
}

// parsePolicy takes any word as a syscall name (see below); the shipped
// policies must name real ones, and limits setrlimit knows.
TEST(SandboxPolicy, EmbeddedPoliciesNameRealSyscallsAndLimits) {
  for (const char* name :
       {"common-device.policy", "virtio-blk.policy", "virtio-net.policy", "sanitizer-runtime.policy"}) {
    auto policy = policyOf(name);
    EXPECT_FALSE(policy.rules.empty()) << name;
    for (const auto& rule : policy.rules) {
      EXPECT_NE(seccomp_syscall_resolve_name(rule.name.c_str()), __NR_SCMP_ERROR)
          << name << ": " << rule.name;
    }
    for (const auto& limit : policy.limits) {
      EXPECT_TRUE(limit.name == "core" || limit.name == "nofile" || limit.name == "nproc" ||
                  limit.name == "fsize" || limit.name == "memlock")
          << name << ": rlimit " << limit.name;
    }
  }
}

TEST(SandboxPolicy, UnknownIncludeIsRefused) {
  EXPECT_THROW(parsePolicy("mine.policy", "include nonexistent.policy\n"), std::invalid_argument);
  EXPECT_THROW(parsePolicy("mine.policy", "include\n"), std::invalid_argument);
}

TEST(SandboxPolicy, ErrorsNameFileAndLine) {
  struct Case {
    const char* text;
    const char* where;
    const char* why;
  };
  for (Case c : {
           Case{"allow read\nbogus read\n", "test.policy:2: ", "expected include, allow or rlimit"},
           Case{"allow\n", "test.policy:1: ", "expected include, allow or rlimit"},
           Case{"rlimit core\n", "test.policy:1: ", "expected include, allow or rlimit"},
           Case{"include\n", "test.policy:1: ", "expected include, allow or rlimit"},
           Case{"\n\ninclude missing.policy\n", "test.policy:3: ", "missing.policy"},
           Case{"allow read\nallow ioctl if arg6 == 1\n", "test.policy:2: ", "argument index"},
           Case{"allow ioctl if arg == 1\n", "test.policy:1: ", "argument index"},
           Case{"allow ioctl if argx == 1\n", "test.policy:1: ", "argument index"},
           Case{"allow ioctl if arg-1 == 1\n", "test.policy:1: ", "argument index"},
           Case{"allow ioctl if 1 == 1\n", "test.policy:1: ", "expected: allow NAME if"},
           Case{"allow ioctl fcntl if arg1 == 1\n", "test.policy:1: ", "expected: allow NAME if"},
           Case{"allow ioctl if\n", "test.policy:1: ", "expected: allow NAME if"},
           Case{"allow ioctl if arg1 = 1\n", "test.policy:1: ", "expected == VALUE"},
           Case{"allow ioctl if arg1 ==\n", "test.policy:1: ", "expected == VALUE"},
           Case{"allow ioctl if arg1 == 1 2\n", "test.policy:1: ", "expected == VALUE"},
           Case{"allow mmap if arg2 & PROT_EXEC\n", "test.policy:1: ", "expected == VALUE"},
           Case{"allow ioctl if arg1 == 12abc\n", "test.policy:1: ", "bad value 12abc"},
           Case{"allow ioctl if arg1 == -1\n", "test.policy:1: ", "bad value -1"},
           Case{"allow ioctl if arg1 == 0x\n", "test.policy:1: ", "bad value 0x"},
           Case{"allow ioctl if arg1 == 0xfg\n", "test.policy:1: ", "bad value 0xfg"},
           Case{"allow ioctl if arg1 == 18446744073709551616\n", "test.policy:1: ", "bad value"},
           Case{"allow ioctl if arg1 == NOT_A_CONSTANT\n", "test.policy:1: ", "bad value NOT_A_CONSTANT"},
           Case{"allow mmap if arg2 & PROT_NOPE == 0\n", "test.policy:1: ", "bad mask PROT_NOPE"},
           Case{"# one\n# two\n\nrlimit core lots\n", "test.policy:4: ", "bad limit lots"},
           Case{"rlimit nofile 1.5\n", "test.policy:1: ", "bad limit 1.5"},
       }) {
    SCOPED_TRACE(c.text);
    std::string message = parseError(c.text);
    EXPECT_EQ(message.rfind(c.where, 0), 0u) << message;
    EXPECT_NE(message.find(c.why), std::string::npos) << message;
  }
}

TEST(SandboxPolicy, ErrorInsideAnIncludeNamesTheIncludingLine) {
  // Embedded files parse cleanly, so what can fail in an include is the
  // include line itself: the error names the file that has it.
  std::string message =
      parseError("allow read\ninclude common-device.policy\ninclude nope.policy\n", "outer.policy");
  EXPECT_EQ(message.rfind("outer.policy:3: ", 0), 0u) << message;
}

TEST(SandboxPolicy, SameIncludeTwiceIsHarmless) {
  auto policy = parsePolicy("twice.policy", "include common-device.policy\ninclude common-device.policy\n");
  auto once = parsePolicy("once.policy", "include common-device.policy\n");
  EXPECT_EQ(policy.rules.size(), 2 * once.rules.size());
  EXPECT_EQ(policy.syscalls(), once.syscalls());
}

TEST(SandboxPolicy, ArgumentIndexIsADecimalNumber) {
  // "arg" is followed by 0-5. Named constants and hex are numbers elsewhere in
  // a policy, but an argument index spelled that way is a typo.
  for (const char* text : {"allow mmap if argPROT_EXEC == 0", "allow ioctl if arg0x1 == 0"}) {
    SCOPED_TRACE(text);
    bool refused = false;
    try {
      parsePolicy("test.policy", text);
    } catch (const std::invalid_argument&) {
      refused = true;
    }
    EXPECT_TRUE(refused);
  }
}

TEST(SandboxPolicy, UnknownSyscallNamesAreRefusedWithFileAndLine) {
  for (const char* text : {"allow read\nallow raed\n", "allow read\nallow ioctl raed\n",
                           "allow read\nallow raed if arg0 == 1\n"}) {
    SCOPED_TRACE(text);
    try {
      parsePolicy("typo.policy", text);
      ADD_FAILURE() << "a misspelt system call was accepted";
    } catch (const std::invalid_argument& error) {
      EXPECT_NE(std::string(error.what()).find("typo.policy:2:"), std::string::npos) << error.what();
      EXPECT_NE(std::string(error.what()).find("raed"), std::string::npos) << error.what();
    }
  }
}

TEST(SandboxMode, ParsesTheThreeModes) {
  EXPECT_EQ(parseSandboxMode("off"), SandboxMode::OFF);
  EXPECT_EQ(parseSandboxMode("log"), SandboxMode::LOG);
  EXPECT_EQ(parseSandboxMode("enforce"), SandboxMode::ENFORCE);
  EXPECT_EQ(parseSandboxMode(""), SandboxMode::ENFORCE) << "unset means the safe default";
  for (const char* bad : {"Off", "ENFORCE", "on", "enforce ", "disabled", "0"}) {
    SCOPED_TRACE(bad);
    try {
      parseSandboxMode(bad);
      ADD_FAILURE() << "accepted";
    } catch (const std::invalid_argument& error) {
      EXPECT_NE(std::string(error.what()).find(std::string("'") + bad + "'"), std::string::npos)
          << error.what();
    }
  }
}

}  // namespace
}  // namespace cellvisor
