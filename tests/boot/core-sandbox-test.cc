// The core confined as vmmd runs it (--device-socket; here with no device
// servers, so nothing arrives on it): the test guest runs to its end under
// vmm-core.policy, and a forbidden call after confinement (test hook
// --sandbox-fault) kills the core with SIGSYS, naming the syscall; in log
// mode the call goes through and the guest still finishes.
#include <gtest/gtest.h>
#include <sys/syscall.h>

#include "tests/boot/core-process.h"
#include "tests/boot/guest-boot.h"

namespace cellvisor::testing {
namespace {

std::vector<std::string> confinedArgs(const std::string& test, std::vector<std::string> extra) {
  // fd 0 stands for vmmd's device socket: no slot has a server, so the
  // core reads nothing from it, and confines itself as under vmmd.
  extra.insert(extra.begin(), {"--device-socket", "0"});
  return GuestBoot::args(test, extra);
}

TEST_F(GuestBoot, ConfinedCoreRunsTheGuest) {
  CoreProcess core(confinedArgs("smp", {"-c", "2"}));
  EXPECT_EQ(core.wait(), GUEST_PASSED) << core.output();
  EXPECT_EQ(core.err().find("sandbox violation"), std::string::npos) << core.err();
}

TEST_F(GuestBoot, ConfinedCoreDiesOfAForbiddenCall) {
  struct Case {
    std::string fault;
    long syscall;
  };
  for (const auto& [fault, number] : {Case{"open", SYS_openat}, Case{"socket", SYS_socket},
                                      Case{"execve", SYS_execve}, Case{"signal", SYS_tgkill}}) {
    CoreProcess core(confinedArgs("hello", {"--sandbox-fault", fault}));
    EXPECT_EQ(core.wait(), -1) << fault << ": killed by a signal: " << core.output();
    EXPECT_NE(core.err().find("sandbox violation: syscall " + std::to_string(number)), std::string::npos)
        << fault << ": " << core.err();
  }
  CoreProcess logged(confinedArgs("hello", {"--sandbox", "log", "--sandbox-fault", "socket"}));
  EXPECT_EQ(logged.wait(), GUEST_PASSED) << logged.output();
  EXPECT_NE(logged.err().find("the sandbox let socket through"), std::string::npos) << logged.err();
}

}  // namespace
}  // namespace cellvisor::testing
