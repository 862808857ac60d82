// What a device server serves: one PCI function. The runtime (DeviceServer)
// owns the event loop, the request channel, the state segment's header and
// the eventfds; a device implements this interface and owns its body of the
// state segment. virtio-pci (VirtioTransport) is one implementation; an NVMe
// controller or a display adapter is another.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "pci/config-space.h"
#include "pci/msix.h"
#include "proto/state-segment.h"

namespace cellvisor {

using pci::MsixUpdate;

struct FunctionBar {
  uint8_t index;
  uint64_t size;
  pci::BarKind kind;
  bool prefetchable = false;
  // Backed by the device's shared BAR memory from this offset (a memslot in
  // the guest, accesses never exit) instead of served by register accesses.
  bool sharedMemory = false;
  uint64_t sharedMemoryOffset = 0;
};

// A region of a BAR whose writes the core turns into doorbell eventfd
// `doorbell`: the server hears them without a round trip through the core.
struct FunctionDoorbell {
  uint8_t bar;
  uint64_t offset;
  uint8_t length;  // 0: any access size.
  uint16_t doorbell;
  bool startsOff = false;  // An ioeventfd only once the function switches it on.
};

struct DoorbellSwitch {
  uint16_t doorbell;
  bool on;
};

struct FunctionLayout {
  std::vector<FunctionBar> bars;
  std::vector<FunctionDoorbell> doorbells;
  uint16_t doorbellCount = 0;  // Eventfds the spawner must hand over.
  uint16_t msixVectors = 0;    // Interrupt eventfds, one per vector.
};

class PciFunction {
 public:
  virtual ~PciFunction() = default;

  virtual FunctionLayout layout() const = 0;
  // The runtime checked its fds against layout() and took over the state
  // segment: from now on the function may raise MSI-X vector v with
  // `signal(v)`. A restarted function finishes here whatever its
  // predecessor left half-done.
  virtual void start(std::function<void(uint16_t vector)> signal) = 0;
  // How the supervisor tells the guest the device failed, in this device's
  // terms, once no server will run again (written into the state header).
  virtual FailureNotice failureNotice() const = 0;

  // Register accesses from the core (values little-endian, 1 to 8 bytes).
  virtual uint32_t configRead(uint16_t offset, uint8_t size) = 0;
  virtual std::vector<MsixUpdate> configWrite(uint16_t offset, uint8_t size, uint32_t value) = 0;
  virtual uint64_t barRead(uint8_t bar, uint64_t offset, uint8_t size) = 0;
  virtual std::vector<MsixUpdate> barWrite(uint8_t bar, uint64_t offset, uint8_t size, uint64_t value) = 0;

  // Doorbell eventfd `index` fired (or, after a restart or a resume, a look
  // at what may have arrived meanwhile).
  virtual void doorbell(uint16_t index) = 0;
  // Whether the guest's driver has the function running (doorbells mean work).
  virtual bool live() const = 0;
  // A function-level reset, on the core's request.
  virtual std::vector<MsixUpdate> reset() = 0;
  // Pause: take nothing new and finish what was taken, so guest memory and
  // the state segment hold still until resume.
  virtual void pause() = 0;
  virtual void resume() = 0;
  // Busy polling: do whatever is ready without waiting; true if anything was.
  virtual bool poll() { return false; }
  // All MSI-X vectors as programmed, for a core (re)connecting.
  virtual std::vector<MsixUpdate> msixVectors() const = 0;
  // Doorbells turned on or off by the last request (sent with its reply).
  virtual std::vector<DoorbellSwitch> takeDoorbellSwitches() { return {}; }
};

}  // namespace cellvisor
