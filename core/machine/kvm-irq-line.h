// An ISA/IOAPIC interrupt line of the in-kernel irqchip.
#pragma once

#include "core/kvm/vm.h"
#include "core/platform/io-device.h"

namespace cellvisor {

class KvmIrqLine : public IrqLine {
 public:
  KvmIrqLine(Vm& vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
  void set(bool level) override { vm_.setIrqLine(gsi_, level); }

 private:
  Vm& vm_;
  uint32_t gsi_;
};

}  // namespace cellvisor
