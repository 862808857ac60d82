// One KVM vCPU: register state and a single KVM_RUN step. The loop that
// dispatches exits lives in core/machine (VcpuLoop); this class only wraps the fd.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "base/mapping.h"
#include "base/unique-fd.h"

namespace cellvisor {

class Vcpu {
 public:
  Vcpu(UniqueFd fd, uint32_t id, int mmapSize);

  uint32_t id() const { return id_; }
  int fd() const { return fd_.get(); }
  kvm_run& runState() const { return *run_.as<kvm_run>(); }

  kvm_regs regs() const;
  void setRegs(const kvm_regs& regs);
  kvm_sregs sregs() const;
  void setSregs(const kvm_sregs& sregs);
  void setFpu(const kvm_fpu& fpu);
  void setCpuid(std::span<const kvm_cpuid_entry2> entries);
  void setMsrs(std::span<const std::pair<uint32_t, uint64_t>> msrs);
  void setLapic(const kvm_lapic_state& lapic);
  kvm_lapic_state lapic() const;
  kvm_mp_state mpState() const;
  void setMpState(uint32_t state);

  // One KVM_RUN. Returns false when interrupted by a signal (EINTR/immediate
  // exit) so the caller can look at its stop flag; throws on real errors.
  bool run();
  // Makes the next (or current, together with a signal) KVM_RUN return at once.
  void requestImmediateExit(bool value) { runState().immediate_exit = value ? 1 : 0; }

 private:
  UniqueFd fd_;
  uint32_t id_;
  Mapping run_;
};

}  // namespace cellvisor
