// The fixture of the tier-3 tests: the test guest booted by the real core on
// real KVM, one guest test picked by its command line.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/boot/core-process.h"

namespace cellvisor::testing {

constexpr int GUEST_PASSED = (0x10 << 1) | 1;

class GuestBoot : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = kvmUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  }

 public:
  // vmm-core running guest test `test`, with `extra` options before the VM name.
  static std::vector<std::string> args(const std::string& test, std::vector<std::string> extra = {}) {
    std::vector<std::string> all = {coreBinary(), "-m",         "128M",      "-l",          "com1,stdio",
                                    "--kernel",   guestImage(), "--cmdline", "test=" + test};
    all.insert(all.end(), extra.begin(), extra.end());
    all.push_back("guest-test");
    return all;
  }
};

}  // namespace cellvisor::testing
