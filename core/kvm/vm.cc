#include "core/kvm/vm.h"

#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "base/system-error.h"
#include "core/kvm/kvm-abi.h"
#include "core/kvm/vcpu.h"

namespace cellvisor {
namespace {

constexpr uint32_t PIC_PINS = 16;
constexpr uint32_t IOAPIC_PINS = 24;

kvm_irq_routing_entry irqchipRoute(uint32_t gsi, uint32_t chip, uint32_t pin) {
  kvm_irq_routing_entry entry{};
  entry.gsi = gsi;
  entry.type = KVM_IRQ_ROUTING_IRQCHIP;
  entry.u.irqchip.irqchip = chip;
  entry.u.irqchip.pin = pin;
  return entry;
}

kvm_irq_routing_entry msiRoute(uint32_t gsi, uint64_t address, uint32_t data) {
  kvm_irq_routing_entry entry{};
  entry.gsi = gsi;
  entry.type = KVM_IRQ_ROUTING_MSI;
  entry.u.msi.address_lo = static_cast<uint32_t>(address);
  entry.u.msi.address_hi = static_cast<uint32_t>(address >> 32);
  entry.u.msi.data = data;
  return entry;
}

}  // namespace

Vm::Vm(UniqueFd fd, int vcpuMmapSize) : fd_(std::move(fd)), vcpuMmapSize_(vcpuMmapSize) {}

uint32_t Vm::addMemorySlot(uint64_t guestPhysical, uint64_t size, void* host, uint32_t flags) {
  std::lock_guard lock(slotsMutex_);
  auto free = std::find(slotsInUse_.begin(), slotsInUse_.end(), false);
  auto slot = static_cast<uint32_t>(free - slotsInUse_.begin());
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = guestPhysical;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host);
  checkSyscall(::ioctl(fd(), KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION");
  if (free == slotsInUse_.end()) {
    slotsInUse_.push_back(true);
  } else {
    *free = true;
  }
  return slot;
}

void Vm::removeMemorySlot(uint32_t slot) {
  std::lock_guard lock(slotsMutex_);
  if (slot >= slotsInUse_.size() || !slotsInUse_[slot]) return;
  kvm_userspace_memory_region region{};  // Size 0 deletes the slot.
  region.slot = slot;
  checkSyscall(::ioctl(fd(), KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION (delete)");
  slotsInUse_[slot] = false;
}

void Vm::createIrqchip() {
  checkSyscall(::ioctl(fd(), KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
  irqchip_ = true;
  // The wired pins, as a PC has them and our MADT describes them; MSI
  // routes are added after these. ISA IRQ 0 (the PIT, GSI 0) arrives on
  // IOAPIC pin 2 (the MADT's interrupt source override) and IOAPIC pin 0
  // (ExtINT) has no GSI. A GSI may not reach the same chip twice: KVM
  // refuses the whole table (KVM_SET_GSI_ROUTING: EINVAL) if it does.
  std::lock_guard lock(routesMutex_);
  for (uint32_t pin = 0; pin < PIC_PINS; ++pin) {
    if (pin == 2) continue;  // The cascade pin is not routable.
    routes_.push_back(irqchipRoute(pin, pin < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, pin % 8));
  }
  for (uint32_t pin = 1; pin < IOAPIC_PINS; ++pin) {
    routes_.push_back(irqchipRoute(pin == 2 ? 0 : pin, KVM_IRQCHIP_IOAPIC, pin));
  }
  // In force from the start (not only once the first MSI route replaces
  // KVM's default table, which has no override): the PIT reaches the pin
  // the MADT names, and a table KVM refuses fails here, not at a guest's
  // first MSI-X write.
  commitRoutes();
}

void Vm::createPit() {
  kvm_pit_config config{};
  config.flags = KVM_PIT_SPEAKER_DUMMY;
  checkSyscall(::ioctl(fd(), KVM_CREATE_PIT2, &config), "KVM_CREATE_PIT2");
}

void Vm::enableUnknownMsrExits() {
  if (::ioctl(fd(), KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR) <= 0) {
    throw std::runtime_error(
        "this KVM cannot pass unknown MSRs to user space (no KVM_CAP_X86_USER_SPACE_MSR)");
  }
  kvm_enable_cap cap{};
  cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
  cap.args[0] = KVM_MSR_EXIT_REASON_UNKNOWN;
  checkSyscall(::ioctl(fd(), KVM_ENABLE_CAP, &cap), "KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR)");
}

void Vm::setTssAddress(uint64_t address) {
  checkSyscall(::ioctl(fd(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(address)), "KVM_SET_TSS_ADDR");
}

void Vm::setIdentityMapAddress(uint64_t address) {
  checkSyscall(::ioctl(fd(), KVM_SET_IDENTITY_MAP_ADDR, &address), "KVM_SET_IDENTITY_MAP_ADDR");
}

void Vm::setIrqLine(uint32_t gsi, bool level) {
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  checkSyscall(::ioctl(fd(), KVM_IRQ_LINE, &irq), "KVM_IRQ_LINE");
}

void Vm::signalMsi(uint64_t address, uint32_t data) {
  kvm_msi msi{};
  msi.address_lo = static_cast<uint32_t>(address);
  msi.address_hi = static_cast<uint32_t>(address >> 32);
  msi.data = data;
  checkSyscall(::ioctl(fd(), KVM_SIGNAL_MSI, &msi), "KVM_SIGNAL_MSI");
}

void Vm::ioEventfd(int eventfd, uint64_t address, uint32_t length, bool pio,
                   std::optional<uint64_t> datamatch, uint32_t extraFlags) {
  kvm_ioeventfd request{};
  request.addr = address;
  request.len = length;
  request.fd = eventfd;
  request.flags = extraFlags | (pio ? KVM_IOEVENTFD_FLAG_PIO : 0u);
  if (datamatch) {
    request.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    request.datamatch = *datamatch;
  }
  checkSyscall(::ioctl(fd(), KVM_IOEVENTFD, &request), "KVM_IOEVENTFD");
}

void Vm::addIoEventfd(int eventfd, uint64_t address, uint32_t length, bool pio,
                      std::optional<uint64_t> datamatch) {
  ioEventfd(eventfd, address, length, pio, datamatch, 0);
}

void Vm::removeIoEventfd(int eventfd, uint64_t address, uint32_t length, bool pio,
                         std::optional<uint64_t> datamatch) {
  ioEventfd(eventfd, address, length, pio, datamatch, KVM_IOEVENTFD_FLAG_DEASSIGN);
}

void Vm::addIrqfd(int eventfd, uint32_t gsi) {
  kvm_irqfd request{};
  request.fd = static_cast<uint32_t>(eventfd);
  request.gsi = gsi;
  checkSyscall(::ioctl(fd(), KVM_IRQFD, &request), "KVM_IRQFD");
}

void Vm::removeIrqfd(int eventfd, uint32_t gsi) {
  kvm_irqfd request{};
  request.fd = static_cast<uint32_t>(eventfd);
  request.gsi = gsi;
  request.flags = KVM_IRQFD_FLAG_DEASSIGN;
  checkSyscall(::ioctl(fd(), KVM_IRQFD, &request), "KVM_IRQFD deassign");
}

void Vm::addMsiRoute(uint32_t gsi, uint64_t address, uint32_t data) {
  std::lock_guard lock(routesMutex_);
  routes_.push_back(msiRoute(gsi, address, data));
  try {
    commitRoutes();
  } catch (...) {
    routes_.pop_back();  // A refused route must not poison the next commit.
    throw;
  }
}

void Vm::updateMsiRoute(uint32_t gsi, uint64_t address, uint32_t data) {
  std::lock_guard lock(routesMutex_);
  for (auto& route : routes_) {
    if (route.gsi == gsi && route.type == KVM_IRQ_ROUTING_MSI) {
      kvm_irq_routing_entry previous = route;
      route = msiRoute(gsi, address, data);
      try {
        commitRoutes();
      } catch (...) {
        route = previous;
        throw;
      }
      return;
    }
  }
  throw std::invalid_argument("no MSI route for GSI " + std::to_string(gsi));
}

void Vm::commitRoutes() {
  kvm_abi::Table<kvm_irq_routing_entry> table(routes_);
  table.header().padding = 0;  // The routing header's second word is flags.
  checkSyscall(::ioctl(fd(), kvm_abi::SET_GSI_ROUTING, table.data()), "KVM_SET_GSI_ROUTING");
}

std::unique_ptr<Vcpu> Vm::createVcpu(uint32_t id) {
  int vcpuFd =
      checkSyscall(::ioctl(fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(id)), "KVM_CREATE_VCPU");
  return std::make_unique<Vcpu>(UniqueFd(vcpuFd), id, vcpuMmapSize_);
}

}  // namespace cellvisor
