// How the guest starts, as a step the machine runs after the platform is
// built and before vCPU 0 does: a boot method puts what the guest needs into
// memory (or maps it) and sets the boot vCPU's registers. Direct kernel boot
// (bzImage, PVH ELF) is one; firmware (a bootrom at the top of 4 GiB, vCPU 0
// at the reset vector) the other. The other vCPUs wait for INIT/SIPI
// either way.
#pragma once

#include <memory>
#include <string>

#include "core/acpi/acpi-tables.h"

namespace cellvisor {

class FwCfg;
class GuestMemory;
class Vcpu;
class Vm;
struct MachineConfig;

// What a boot method may use.
struct BootContext {
  GuestMemory& memory;
  Vm& vm;
  AcpiLayout acpi;  // The platform the core's ACPI tables describe.
  FwCfg& fwCfg;     // What firmware reads the machine from.
};

class BootMethod {
 public:
  virtual ~BootMethod() = default;
  // Throws LoadError naming what is wrong (a missing or broken image).
  virtual void prepare(BootContext& context) = 0;
  virtual void setUpBootVcpu(Vcpu& vcpu) = 0;
};

// The method `config` asks for: a bootrom or a kernel. Throws LoadError when
// it asks for neither or for both.
std::unique_ptr<BootMethod> chooseBootMethod(const MachineConfig& config);
std::unique_ptr<BootMethod> makeFirmwareBoot(const MachineConfig& config);

}  // namespace cellvisor
