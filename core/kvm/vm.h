// A KVM virtual machine: memory slots, the in-kernel interrupt controllers and
// PIT, and the eventfd plumbing (ioeventfd, irqfd, MSI routes) that lets device
// servers reach the guest without passing through the core.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "base/unique-fd.h"

namespace cellvisor {

class Vcpu;

class Vm {
 public:
  Vm(UniqueFd fd, int vcpuMmapSize);

  int fd() const { return fd_.get(); }

  // Guest memory backed by `host` at `guestPhysical`, in the first free
  // memory slot; returns the slot. Throws std::system_error when KVM refuses
  // (an overlap, no slot left).
  uint32_t addMemorySlot(uint64_t guestPhysical, uint64_t size, void* host, uint32_t flags = 0);
  void removeMemorySlot(uint32_t slot);
  // In-kernel PIC, IOAPIC and LAPICs, plus the i8254 PIT.
  void createIrqchip();
  void createPit();
  void setTssAddress(uint64_t address);
  // MSRs KVM does not know exit to user space (KVM_EXIT_X86_RDMSR/WRMSR)
  // instead of raising #GP in the guest. Throws if this KVM cannot.
  void enableUnknownMsrExits();
  void setIdentityMapAddress(uint64_t address);

  // Drives a GSI (legacy IRQ line) to `level`.
  void setIrqLine(uint32_t gsi, bool level);
  // Delivers one MSI directly (no route needed).
  void signalMsi(uint64_t address, uint32_t data);

  // A guest write to `address` (`length` bytes, optionally matching `datamatch`)
  // signals `eventfd` in the kernel instead of exiting to the core.
  void addIoEventfd(int eventfd, uint64_t address, uint32_t length, bool pio,
                    std::optional<uint64_t> datamatch = std::nullopt);
  void removeIoEventfd(int eventfd, uint64_t address, uint32_t length, bool pio,
                       std::optional<uint64_t> datamatch = std::nullopt);
  // Signalling `eventfd` raises `gsi` in the guest.
  void addIrqfd(int eventfd, uint32_t gsi);
  void removeIrqfd(int eventfd, uint32_t gsi);
  // MSI routes live in a GSI table the kernel replaces as a whole; the Vm
  // keeps the table. `gsi` comes from the machine's ResourceAllocator.
  void addMsiRoute(uint32_t gsi, uint64_t address, uint32_t data);
  void updateMsiRoute(uint32_t gsi, uint64_t address, uint32_t data);

  std::unique_ptr<Vcpu> createVcpu(uint32_t id);

 private:
  void commitRoutes();
  void ioEventfd(int eventfd, uint64_t address, uint32_t length, bool pio, std::optional<uint64_t> datamatch,
                 uint32_t extraFlags);

  UniqueFd fd_;
  int vcpuMmapSize_;
  std::mutex routesMutex_;
  std::vector<kvm_irq_routing_entry> routes_;
  std::mutex slotsMutex_;
  std::vector<bool> slotsInUse_;
  bool irqchip_ = false;
};

}  // namespace cellvisor
