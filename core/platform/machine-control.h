// How platform devices end the VM. Exit statuses follow bhyve(8).
#pragma once

#include <string>

namespace cellvisor {

enum class ExitStatus : int {
  REBOOT = 0,
  POWEROFF = 1,
  HALT = 2,
  TRIPLE_FAULT = 3,
  ERROR = 4,
};

class MachineControl {
 public:
  virtual ~MachineControl() = default;
  // Stops every vCPU; the core then exits with `status`.
  virtual void requestExit(int status, const std::string& reason) = 0;
  void requestExit(ExitStatus status, const std::string& reason) {
    requestExit(static_cast<int>(status), reason);
  }
};

}  // namespace cellvisor
