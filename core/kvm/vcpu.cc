#include "core/kvm/vcpu.h"

#include <sys/ioctl.h>

#include <cstring>

#include "base/system-error.h"
#include "core/kvm/kvm-abi.h"

namespace cellvisor {

Vcpu::Vcpu(UniqueFd fd, uint32_t id, int mmapSize)
    : fd_(std::move(fd)),
      id_(id),
      run_(Mapping::map(fd_.get(), static_cast<size_t>(mmapSize), PROT_READ | PROT_WRITE, MAP_SHARED)) {}

kvm_regs Vcpu::regs() const {
  kvm_regs regs{};
  checkSyscall(::ioctl(fd(), KVM_GET_REGS, &regs), "KVM_GET_REGS");
  return regs;
}

void Vcpu::setRegs(const kvm_regs& regs) {
  checkSyscall(::ioctl(fd(), KVM_SET_REGS, &regs), "KVM_SET_REGS");
}

kvm_sregs Vcpu::sregs() const {
  kvm_sregs sregs{};
  checkSyscall(::ioctl(fd(), KVM_GET_SREGS, &sregs), "KVM_GET_SREGS");
  return sregs;
}

void Vcpu::setSregs(const kvm_sregs& sregs) {
  checkSyscall(::ioctl(fd(), KVM_SET_SREGS, &sregs), "KVM_SET_SREGS");
}

void Vcpu::setFpu(const kvm_fpu& fpu) {
  checkSyscall(::ioctl(fd(), KVM_SET_FPU, &fpu), "KVM_SET_FPU");
}

void Vcpu::setCpuid(std::span<const kvm_cpuid_entry2> entries) {
  kvm_abi::Table<kvm_cpuid_entry2> table({entries.begin(), entries.end()});
  checkSyscall(::ioctl(fd(), kvm_abi::SET_CPUID2, table.data()), "KVM_SET_CPUID2");
}

void Vcpu::setMsrs(std::span<const std::pair<uint32_t, uint64_t>> msrs) {
  std::vector<kvm_msr_entry> entries(msrs.size());
  for (size_t i = 0; i < msrs.size(); ++i) {
    entries[i].index = msrs[i].first;
    entries[i].data = msrs[i].second;
  }
  kvm_abi::Table<kvm_msr_entry> table(entries);
  int written = checkSyscall(::ioctl(fd(), kvm_abi::SET_MSRS, table.data()), "KVM_SET_MSRS");
  if (static_cast<size_t>(written) != msrs.size()) {
    throwSystemError("KVM_SET_MSRS rejected MSR " + std::to_string(msrs[static_cast<size_t>(written)].first),
                     EINVAL);
  }
}

void Vcpu::setLapic(const kvm_lapic_state& lapic) {
  checkSyscall(::ioctl(fd(), KVM_SET_LAPIC, &lapic), "KVM_SET_LAPIC");
}

kvm_lapic_state Vcpu::lapic() const {
  kvm_lapic_state lapic{};
  checkSyscall(::ioctl(fd(), KVM_GET_LAPIC, &lapic), "KVM_GET_LAPIC");
  return lapic;
}

kvm_mp_state Vcpu::mpState() const {
  kvm_mp_state state{};
  checkSyscall(::ioctl(fd(), KVM_GET_MP_STATE, &state), "KVM_GET_MP_STATE");
  return state;
}

void Vcpu::setMpState(uint32_t state) {
  kvm_mp_state mp{state};
  checkSyscall(::ioctl(fd(), KVM_SET_MP_STATE, &mp), "KVM_SET_MP_STATE");
}

bool Vcpu::run() {
  if (::ioctl(fd(), KVM_RUN, 0) == 0) return true;
  if (errno == EINTR || errno == EAGAIN) return false;
  throwSystemError("KVM_RUN");
}

}  // namespace cellvisor
