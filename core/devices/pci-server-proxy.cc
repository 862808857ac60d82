#include "core/devices/pci-server-proxy.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <iostream>

#include "base/system-error.h"
#include "pci/config-space.h"

namespace cellvisor {
namespace {

constexpr uint64_t PAGE = 4096;
constexpr uint16_t COMMAND = 0x04;
constexpr uint16_t BAR0 = 0x10;
constexpr uint16_t COMMAND_IO = 1;
constexpr uint16_t COMMAND_MEMORY = 2;
constexpr uint16_t COMMAND_BUS_MASTER = 4;
using pci::EXPANSION_ROM;
using pci::ROM_BAR_INDEX;
using pci::ROM_ENABLE;

// Where a BAR's register is: 0x10 + 4 * index, the ROM's at 0x30.
uint16_t barRegister(uint8_t index) {
  return index == ROM_BAR_INDEX ? EXPANSION_ROM : static_cast<uint16_t>(BAR0 + 4 * index);
}

}  // namespace

PciServerProxy::PciServerProxy(DeviceChannel& server, DeviceWiring& wiring)
    : server_(server), wiring_(wiring) {
  auto reply = server_.call([](proto::Request::Builder request) {
    request.initHello().setCoreProtocolVersion(proto::PROTOCOL_VERSION);
  });
  try {
    auto root = reply.root<proto::Reply>();
    if (root.isError()) throw std::runtime_error(server_.deviceName() + ": " + root.getError().cStr());
    if (!root.isHello()) throw DeviceUnavailable(server_.deviceName() + ": server did not answer hello");
    takeHello(root.getHello());
  } catch (const kj::Exception& error) {
    throw DeviceUnavailable(server_.deviceName() + ": malformed hello: " + error.getDescription().cStr());
  }
}

void PciServerProxy::takeHello(proto::HelloReply::Reader hello) {
  serverName_ = hello.getServerName();
  for (auto bar : hello.getBars()) {
    uint64_t size = bar.getSize();
    bool is64 = bar.getKind() == proto::PciBar::Kind::MEMORY64;
    // A 64-bit BAR takes two registers: 5 is the last that has one.
    bool taken = std::any_of(bars_.begin(), bars_.end(), [&](const ProxyBar& other) {
      return other.index == bar.getIndex() || (other.is64 && other.index + 1 == bar.getIndex()) ||
             (is64 && bar.getIndex() + 1 == other.index);
    });
    // Index 6 is the expansion ROM: 32-bit memory, 2 KiB at least.
    bool rom = bar.getIndex() == ROM_BAR_INDEX;
    bool romOk = !rom || (bar.getKind() == proto::PciBar::Kind::MEMORY32 && size >= 0x800);
    if (bar.getIndex() > (is64  ? 4
                          : rom ? ROM_BAR_INDEX
                                : 5) ||
        !romOk || size == 0 || (size & (size - 1)) != 0 || taken) {
      throw DeviceUnavailable(server_.deviceName() + ": server declared an impossible BAR");
    }
    ProxyBar declared{bar.getIndex(), size, bar.getKind() == proto::PciBar::Kind::IO,
                      bar.getKind() == proto::PciBar::Kind::MEMORY64};
    if (bar.getBacking().isSharedMemory()) {
      declared.shared = true;
      declared.sharedOffset = bar.getBacking().getSharedMemory();
    }
    bars_.push_back(declared);
  }
  mapSharedMemory();
  for (auto doorbell : hello.getDoorbells()) {
    if (doorbell.getQueue() >= server_.queueCount()) {
      throw DeviceUnavailable(server_.deviceName() + ": doorbell for a queue it has no eventfd for");
    }
    uint8_t length = doorbell.getLength();
    if (length != 0 && length != 1 && length != 2 && length != 4 && length != 8) {
      throw DeviceUnavailable(server_.deviceName() + ": doorbell of an access size no bus has");
    }
    for (const auto& other : doorbells_) {
      if (other.bar == doorbell.getBar() && other.offset == doorbell.getOffset()) {
        throw DeviceUnavailable(server_.deviceName() + ": two doorbells at one address");
      }
    }
    doorbells_.push_back({doorbell.getBar(), doorbell.getOffset(), doorbell.getLength(), doorbell.getQueue(),
                          !doorbell.getStartsOff()});
  }
  if (hello.getMsixVectors() > server_.vectorCount()) {
    throw DeviceUnavailable(server_.deviceName() + ": more MSI-X vectors than interrupt eventfds");
  }
  for (const auto& bar : bars_) windows_.push_back(std::make_unique<BarWindow>(*this, bar.index));
}

void PciServerProxy::mapSharedMemory() {
  // The server names the region; the core checks it against the memory the
  // supervisor made before the guest can reach a byte of it.
  bool any = std::any_of(bars_.begin(), bars_.end(), [](const ProxyBar& bar) { return bar.shared; });
  if (!any) return;
  int fd = server_.resources().barMemory();
  if (fd < 0) throw DeviceUnavailable(server_.deviceName() + ": shared-memory BAR but no BAR memory");
  struct stat st {};
  checkSyscall(::fstat(fd, &st), "fstat BAR memory");
  auto bytes = static_cast<uint64_t>(st.st_size);
  for (const auto& bar : bars_) {
    if (!bar.shared) continue;
    if (bar.io || bar.size < PAGE || bar.sharedOffset % PAGE != 0 || bar.sharedOffset > bytes ||
        bar.size > bytes - bar.sharedOffset) {
      throw DeviceUnavailable(server_.deviceName() + ": shared-memory BAR" + std::to_string(bar.index) +
                              " does not fit its BAR memory");
    }
  }
  barMemory_ = Mapping::map(fd, bytes, PROT_READ | PROT_WRITE, MAP_SHARED);
}

PciServerProxy::~PciServerProxy() {
  std::lock_guard lock(mappingMutex_);
  for (auto& bar : bars_) {
    if (bar.mappedAt == 0) continue;
    unmap(bar);
  }
}

void PciServerProxy::map(ProxyBar& bar, uint64_t address) {
  if (bar.shared) {
    wiring_.mapSharedBar(address, {barMemory_.data() + bar.sharedOffset, bar.size});
  } else {
    wiring_.mapBar(address, bar.size, bar.io, *windows_[static_cast<size_t>(&bar - bars_.data())]);
  }
  bar.mappedAt = address;
  if (!bar.shared) mapDoorbells(bar, true);
}

void PciServerProxy::unmap(ProxyBar& bar) {
  if (bar.shared) {
    wiring_.unmapSharedBar(bar.mappedAt);
  } else {
    mapDoorbells(bar, false);
    wiring_.unmapBar(bar.mappedAt, bar.io);
  }
  bar.mappedAt = 0;
}

void PciServerProxy::assignBar(uint8_t index, uint64_t address) {
  uint16_t offset = barRegister(index);
  for (const auto& bar : bars_) {
    if (bar.index != index) continue;
    // A ROM is placed but left off, as firmware leaves one it has copied.
    writeConfig(offset, 4, static_cast<uint32_t>(address));
    if (bar.is64) writeConfig(static_cast<uint16_t>(offset + 4), 4, static_cast<uint32_t>(address >> 32));
  }
}

void PciServerProxy::enableDecoding() {
  uint32_t command = readConfig(COMMAND, 2);
  writeConfig(COMMAND, 2, command | COMMAND_MEMORY | COMMAND_IO | COMMAND_BUS_MASTER);
}

uint32_t PciServerProxy::readConfig(uint16_t offset, uint8_t size) {
  uint32_t value = size == 4 ? 0xffffffff : (1u << (8 * size)) - 1;  // As if nobody answered.
  forward(
      [&](proto::Request::Builder request) {
        auto access = request.initConfigRead();
        access.setOffset(offset);
        access.setSize(size);
      },
      [&](proto::Reply::Reader reply) {
        if (reply.isValue()) value = static_cast<uint32_t>(reply.getValue());
      });
  return value;
}

void PciServerProxy::writeConfig(uint16_t offset, uint8_t size, uint32_t value) {
  bool answered = forward(
      [&](proto::Request::Builder request) {
        auto access = request.initConfigWrite();
        access.setOffset(offset);
        access.setSize(size);
        access.setValue(value);
      },
      [&](proto::Reply::Reader reply) {
        if (reply.isDone()) applyEffects(reply.getDone());
      });
  if (!answered) return;
  // Command register or a BAR changed: decoding may have moved.
  bool touchesCommand = offset < COMMAND + 2 && offset + size > COMMAND;
  bool touchesBars = (offset + size > BAR0 && offset < BAR0 + 24) ||
                     (offset + size > EXPANSION_ROM && offset < EXPANSION_ROM + 4);
  if (touchesCommand || touchesBars) refreshMappings();
}

void PciServerProxy::refreshMappings() {
  uint32_t command = readConfig(COMMAND, 2);
  std::lock_guard lock(mappingMutex_);
  for (auto& bar : bars_) {
    bool rom = bar.index == ROM_BAR_INDEX;
    uint16_t offset = barRegister(bar.index);
    uint64_t low = readConfig(offset, 4);
    uint64_t address = bar.io ? (low & ~0x3ull) : rom ? (low & ~0x7ffull) : (low & ~0xfull);
    if (bar.is64) address |= uint64_t{readConfig(static_cast<uint16_t>(offset + 4), 4)} << 32;
    // A ROM decodes only while its own enable bit is set too.
    bool enabled = (command & (bar.io ? COMMAND_IO : COMMAND_MEMORY)) != 0 && (!rom || (low & ROM_ENABLE));
    // While the guest sizes a BAR (all-ones written) it holds no real address.
    bool sizing = (address | (bar.size - 1)) == (bar.io ? 0xffffffffull : (bar.is64 ? ~0ull : 0xffffffffull));
    uint64_t wanted = enabled && !sizing && address != 0 ? address : 0;
    if (wanted == bar.mappedAt) continue;
    if (bar.mappedAt != 0) unmap(bar);
    if (wanted != 0) {
      try {
        map(bar, wanted);
      } catch (const std::exception& error) {
        // The guest placed the BAR over something else: leave it unmapped.
        std::cerr << "vmm-core: " << server_.deviceName() << ": BAR" << int{bar.index} << ": " << error.what()
                  << '\n';
      }
    }
  }
}

void PciServerProxy::mapDoorbells(const ProxyBar& bar, bool add) {
  // Only what KVM took is ever given back: a refused one leaves nothing to
  // remove, and removing stays safe in a destructor.
  for (auto& doorbell : doorbells_) {
    if (doorbell.bar != bar.index || doorbell.offset >= bar.size) continue;
    int fd = server_.queueDoorbell(doorbell.queue);
    if (add && doorbell.on && !doorbell.installed) {
      wiring_.addDoorbell(fd, bar.mappedAt + doorbell.offset, doorbell.length, bar.io);
      doorbell.installed = true;
    } else if (!add && doorbell.installed) {
      doorbell.installed = false;
      try {
        wiring_.removeDoorbell(fd, bar.mappedAt + doorbell.offset, doorbell.length, bar.io);
      } catch (const std::exception& error) {
        std::cerr << "vmm-core: " << server_.deviceName() << ": doorbell: " << error.what() << '\n';
      }
    }
  }
}

void PciServerProxy::switchDoorbell(ProxyDoorbell& doorbell, bool on) {
  if (doorbell.on == on) return;
  doorbell.on = on;
  for (const auto& bar : bars_) {
    if (bar.index != doorbell.bar || bar.mappedAt == 0 || bar.shared || doorbell.offset >= bar.size) continue;
    int fd = server_.queueDoorbell(doorbell.queue);
    if (on && !doorbell.installed) {
      wiring_.addDoorbell(fd, bar.mappedAt + doorbell.offset, doorbell.length, bar.io);
      doorbell.installed = true;
    } else if (!on && doorbell.installed) {
      doorbell.installed = false;
      wiring_.removeDoorbell(fd, bar.mappedAt + doorbell.offset, doorbell.length, bar.io);
    }
  }
}

void PciServerProxy::applyEffects(proto::WriteEffects::Reader effects) {
  if (effects.getDoorbellSwitches().size() > 0) {
    std::lock_guard lock(mappingMutex_);
    int on = 0;
    int off = 0;
    for (auto change : effects.getDoorbellSwitches()) {
      ++(change.getOn() ? on : off);
      for (auto& doorbell : doorbells_) {
        if (doorbell.queue != change.getQueue()) continue;
        try {
          switchDoorbell(doorbell, change.getOn());
        } catch (const std::exception& error) {
          // The write still reaches the server, through the core.
          std::cerr << "vmm-core: " << server_.deviceName() << ": doorbell " << change.getQueue() << ": "
                    << error.what() << '\n';
        }
      }
    }
    // Rare (a driver's set-up, a reset) and worth knowing: how the guest's
    // doorbell writes reach the server from now on.
    std::cerr << "vmm-core: " << server_.deviceName() << ": " << on << " doorbells switched to ioeventfds, "
              << off << " back to register writes\n";
  }
  for (auto update : effects.getMsixUpdates()) {
    if (update.getIndex() >= server_.vectorCount()) continue;  // Not a vector we wired.
    try {
      wiring_.routeVector(update.getIndex(), server_.interrupt(update.getIndex()), update.getAddress(),
                          update.getData());
    } catch (const std::exception& error) {
      // The address and data are the guest's: a route KVM refuses is that
      // vector's problem (it stays where it was), never the whole VM's.
      std::cerr << "vmm-core: " << server_.deviceName() << ": MSI-X vector " << update.getIndex()
                << " (address 0x" << std::hex << update.getAddress() << ", data 0x" << update.getData()
                << std::dec << "): " << error.what() << '\n';
    }
  }
}

uint64_t PciServerProxy::readBar(uint8_t bar, uint64_t offset, uint8_t size) {
  uint64_t value = ~0ull;
  if (server_.resources().failed()) return failedDeviceRead(bar, offset, size);
  forward(
      [&](proto::Request::Builder request) {
        auto access = request.initBarRead();
        access.setBar(bar);
        access.setOffset(offset);
        access.setSize(size);
      },
      [&](proto::Reply::Reader reply) {
        if (reply.isValue()) value = reply.getValue();
      });
  return value;
}

uint64_t PciServerProxy::failedDeviceRead(uint8_t bar, uint64_t offset, uint8_t size) {
  // The notice was written by the server: copied once, bounded, and only
  // ever a value handed back to the guest.
  FailureNotice notice = server_.resources().stateHeader().failureNotice;
  for (uint32_t i = 0; i < std::min(notice.readCount, FailureNotice::MAX_READS); ++i) {
    const auto& read = notice.reads[i];
    if (read.bar != bar || read.size != size || offset < read.offset) continue;
    uint64_t distance = offset - read.offset;
    uint64_t unit = 0;
    if (distance != 0) {
      if (read.stride == 0 || distance % read.stride != 0) continue;
      unit = distance / read.stride;
    }
    if (unit < std::clamp<uint32_t>(read.repeat, 1, FailureNotice::MAX_REPEAT))
      return read.value & accessMask(size);
  }
  return ~0ull;
}

void PciServerProxy::writeBar(uint8_t bar, uint64_t offset, uint8_t size, uint64_t value) {
  forward(
      [&](proto::Request::Builder request) {
        auto access = request.initBarWrite();
        access.setBar(bar);
        access.setOffset(offset);
        access.setSize(size);
        access.setValue(value);
      },
      [&](proto::Reply::Reader reply) {
        if (reply.isDone()) applyEffects(reply.getDone());
      });
}

void PciServerProxy::BarWindow::read(uint64_t offset, std::span<uint8_t> data) {
  storeLittleEndian(data, proxy_.readBar(bar_, offset, static_cast<uint8_t>(data.size())));
}

void PciServerProxy::BarWindow::write(uint64_t offset, std::span<const uint8_t> data) {
  proxy_.writeBar(bar_, offset, static_cast<uint8_t>(data.size()), loadLittleEndian(data));
}

}  // namespace cellvisor
