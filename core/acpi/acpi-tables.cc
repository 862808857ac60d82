#include "core/acpi/acpi-tables.h"

#include <array>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "base/guest-memory.h"
#include "core/boot/boot-layout.h"

namespace cellvisor {
namespace {

constexpr char OEM_ID[] = "CELLVR";
constexpr char OEM_TABLE_ID[] = "CELLVSR ";
constexpr uint32_t HEADER_SIZE = 36;

// A table under construction: little-endian appends, patched header at the end.
class TableBuilder {
 public:
  TableBuilder(std::string_view signature, uint8_t revision) {
    bytes_.resize(HEADER_SIZE);
    std::memcpy(bytes_.data(), signature.data(), 4);
    bytes_[8] = revision;
    std::memcpy(bytes_.data() + 10, OEM_ID, 6);
    std::memcpy(bytes_.data() + 16, OEM_TABLE_ID, 8);
    put32At(24, 1);                              // OEM revision.
    std::memcpy(bytes_.data() + 28, "CVSR", 4);  // Creator id.
    put32At(32, 1);                              // Creator revision.
  }

  void put8(uint8_t value) { bytes_.push_back(value); }
  void put16(uint16_t value) { putN(value, 2); }
  void put32(uint32_t value) { putN(value, 4); }
  void put64(uint64_t value) { putN(value, 8); }
  void putBytes(std::initializer_list<uint8_t> values) { bytes_.insert(bytes_.end(), values); }
  // Generic Address Structure for a port in system I/O space.
  void putIoAddress(uint16_t port, uint8_t bitWidth, uint8_t accessSize) {
    put8(1);  // System I/O.
    put8(bitWidth);
    put8(0);
    put8(accessSize);
    put64(port);
  }
  void pad(size_t to) { bytes_.resize(to, 0); }
  size_t size() const { return bytes_.size(); }
  void put32At(size_t offset, uint32_t value) {
    for (int i = 0; i < 4; ++i)
      bytes_[offset + static_cast<size_t>(i)] = static_cast<uint8_t>(value >> (8 * i));
  }

  std::vector<uint8_t> finish() {
    put32At(4, static_cast<uint32_t>(bytes_.size()));
    bytes_[9] = 0;
    bytes_[9] = static_cast<uint8_t>(-acpiChecksum(bytes_.data(), bytes_.size()));
    return std::move(bytes_);
  }

 private:
  void putN(uint64_t value, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(static_cast<uint8_t>(value >> (8 * i)));
  }
  std::vector<uint8_t> bytes_;
};

// Places tables one after another in one blob that will start at `base`.
class TableBlob {
 public:
  explicit TableBlob(uint64_t base) : base_(base) {}
  // Returns the table's guest address once the blob sits at `base`.
  uint64_t place(const std::vector<uint8_t>& table, uint64_t alignment = 16) {
    bytes_.resize((bytes_.size() + alignment - 1) & ~(alignment - 1), 0);
    uint64_t address = base_ + bytes_.size();
    offsets_.push_back({static_cast<uint32_t>(bytes_.size()), static_cast<uint32_t>(table.size())});
    bytes_.insert(bytes_.end(), table.begin(), table.end());
    return address;
  }
  std::vector<uint8_t>& bytes() { return bytes_; }
  // Where each placed table starts and how long it is.
  const std::vector<std::pair<uint32_t, uint32_t>>& tables() const { return offsets_; }

 private:
  uint64_t base_;
  std::vector<uint8_t> bytes_;
  std::vector<std::pair<uint32_t, uint32_t>> offsets_;
};

// AML, the little of it the DSDT needs: an object whose body follows its
// encoded length (which counts its own bytes).
std::vector<uint8_t> amlPackage(std::initializer_list<uint8_t> opcode, const std::vector<uint8_t>& body) {
  std::vector<uint8_t> bytes(opcode);
  size_t length = body.size() + 1;
  if (length < 64) {
    bytes.push_back(static_cast<uint8_t>(length));
  } else {
    length += 1;
    if (length >= 4096) throw std::logic_error("AML package too long");
    bytes.push_back(static_cast<uint8_t>(0x40 | (length & 0x0f)));
    bytes.push_back(static_cast<uint8_t>(length >> 4));
  }
  bytes.insert(bytes.end(), body.begin(), body.end());
  return bytes;
}

void append(std::vector<uint8_t>& to, const std::vector<uint8_t>& bytes) {
  to.insert(to.end(), bytes.begin(), bytes.end());
}

// Device (NAME) { Name (_HID, EisaId (ID)) Name (_CRS, ResourceTemplate () {...}) }
// `hid` is the compressed EISA ID's four bytes; `resources` the template's
// descriptors without the end tag.
std::vector<uint8_t> amlLegacyDevice(const char (&name)[5], std::array<uint8_t, 4> hid,
                                     std::vector<uint8_t> resources) {
  std::vector<uint8_t> body(name, name + 4);
  append(body, {0x08, '_', 'H', 'I', 'D', 0x0c, hid[0], hid[1], hid[2], hid[3]});
  resources.insert(resources.end(), {0x79, 0x00});  // End tag, checksum taken as good.
  std::vector<uint8_t> buffer{0x0a, static_cast<uint8_t>(resources.size())};
  append(buffer, resources);
  append(body, {0x08, '_', 'C', 'R', 'S'});
  append(body, amlPackage({0x11}, buffer));
  return amlPackage({0x5b, 0x82}, body);
}

// IO (Decode16, port, port, 1, 1): one fixed port.
std::vector<uint8_t> amlIoPort(uint16_t port) {
  uint8_t low = static_cast<uint8_t>(port), high = static_cast<uint8_t>(port >> 8);
  return {0x47, 0x01, low, high, low, high, 0x01, 0x01};
}

// IRQNoFlags () {irq}: an edge-triggered, active-high ISA interrupt.
std::vector<uint8_t> amlIsaIrq(unsigned irq) {
  return {0x22, static_cast<uint8_t>(1u << irq), static_cast<uint8_t>((1u << irq) >> 8)};
}

std::vector<uint8_t> buildDsdt() {
  TableBuilder dsdt("DSDT", 2);
  // Name (_S5, Package (4) { 5, 5, 0, 0 }): the sleep type AcpiPm treats as off.
  dsdt.putBytes({0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00});
  // The i8042's keyboard (PNP0303) and mouse (PNP0F13): how an OS finds
  // them on ACPI machines, and SeaBIOS skips its keyboard without them.
  std::vector<uint8_t> keyboardResources = amlIoPort(0x60);
  append(keyboardResources, amlIoPort(0x64));
  append(keyboardResources, amlIsaIrq(1));
  std::vector<uint8_t> scope{0x5c, '_', 'S', 'B', '_'};
  append(scope, amlLegacyDevice("PS2K", {0x41, 0xd0, 0x03, 0x03}, keyboardResources));
  append(scope, amlLegacyDevice("PS2M", {0x41, 0xd0, 0x0f, 0x13}, amlIsaIrq(12)));
  for (uint8_t byte : amlPackage({0x10}, scope)) dsdt.put8(byte);
  return dsdt.finish();
}

std::vector<uint8_t> buildFacs() {
  std::vector<uint8_t> facs(64, 0);
  std::memcpy(facs.data(), "FACS", 4);
  facs[4] = 64;  // Length.
  facs[32] = 2;  // Version.
  return facs;
}

std::vector<uint8_t> buildFadt(const AcpiLayout& acpi, uint64_t facs, uint64_t dsdt) {
  TableBuilder fadt("FACP", 6);
  fadt.put32(static_cast<uint32_t>(facs));
  fadt.put32(static_cast<uint32_t>(dsdt));
  fadt.put8(0);
  fadt.put8(0);  // Preferred PM profile: unspecified.
  fadt.put16(acpi.sciIrq);
  fadt.put32(0);  // SMI_CMD: none, ACPI is always enabled.
  fadt.putBytes({0, 0, 0, 0});
  fadt.put32(acpi.pmEventBlock);
  fadt.put32(0);
  fadt.put32(acpi.pmControlBlock);
  fadt.put32(0);
  fadt.put32(0);
  fadt.put32(acpi.pmTimerBlock);
  fadt.put32(0);                            // GPE0.
  fadt.put32(0);                            // GPE1.
  fadt.putBytes({4, 2, 0, 4, 0, 0, 0, 0});  // Block lengths.
  fadt.put16(101);                          // C2 latency > 100: C2 unsupported.
  fadt.put16(1001);                         // C3 latency > 1000: C3 unsupported.
  fadt.put16(0);
  fadt.put16(0);
  fadt.putBytes({0, 0, 0, 0, 0x32});  // Duty cycle, alarms, CMOS century index.
  // IA-PC boot flags: legacy devices present, an 8042 (Linux probes none
  // without this flag), no VGA, ASPM not to be touched.
  fadt.put16((1u << 0) | (1u << 1) | (1u << 2) | (1u << 4));
  fadt.put8(0);
  // WBINVD, C1 supported, power button as fixed feature (bit 4 clear), no
  // sleep button, reset register supported.
  fadt.put32((1u << 0) | (1u << 2) | (1u << 5) | (1u << 10));
  fadt.putIoAddress(acpi.resetPort, 8, 1);
  fadt.put8(acpi.resetValue);
  fadt.put16(0);  // ARM boot flags.
  fadt.put8(0);   // Minor version.
  fadt.put64(facs);
  fadt.put64(dsdt);
  fadt.putIoAddress(acpi.pmEventBlock, 32, 2);
  fadt.putBytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  fadt.putIoAddress(acpi.pmControlBlock, 16, 2);
  fadt.putBytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  fadt.putBytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  fadt.putIoAddress(acpi.pmTimerBlock, 32, 3);
  fadt.pad(276);
  return fadt.finish();
}

std::vector<uint8_t> buildMadt(const AcpiLayout& acpi) {
  TableBuilder madt("APIC", 5);
  madt.put32(static_cast<uint32_t>(layout::LAPIC_BASE));
  madt.put32(1);  // PCAT_COMPAT: dual 8259s are present.
  for (uint32_t cpu = 0; cpu < acpi.cpuCount; ++cpu) {
    madt.putBytes({0, 8, static_cast<uint8_t>(cpu), static_cast<uint8_t>(cpu)});
    madt.put32(1);  // Enabled.
  }
  madt.putBytes({1, 12, static_cast<uint8_t>(acpi.cpuCount), 0});
  madt.put32(static_cast<uint32_t>(layout::IOAPIC_BASE));
  madt.put32(0);  // GSI base.
  // ISA IRQ 0 (PIT) arrives on IOAPIC pin 2.
  madt.putBytes({2, 10, 0, 0});
  madt.put32(2);
  madt.put16(0);
  // The SCI is level-triggered, active high.
  madt.putBytes({2, 10, 0, static_cast<uint8_t>(acpi.sciIrq)});
  madt.put32(acpi.sciIrq);
  madt.put16(0x000d);
  // LINT1 of every CPU is NMI.
  madt.putBytes({4, 6, 0xff, 0, 0, 1});
  return madt.finish();
}

std::vector<uint8_t> buildMcfg(const AcpiLayout& acpi) {
  TableBuilder mcfg("MCFG", 1);
  mcfg.put64(0);
  mcfg.put64(acpi.ecamBase);
  mcfg.put16(0);  // Segment.
  mcfg.put8(0);
  mcfg.put8(acpi.ecamEndBus);
  mcfg.put32(0);
  return mcfg.finish();
}

}  // namespace

uint8_t acpiChecksum(const uint8_t* data, size_t length) {
  uint8_t sum = 0;
  for (size_t i = 0; i < length; ++i) sum = static_cast<uint8_t>(sum + data[i]);
  return sum;
}

AcpiTables buildAcpiTables(const AcpiLayout& acpi, uint64_t base) {
  // Offsets of the pointer fields between tables, found from each table's
  // place in the blob: FADT's FACS and DSDT (32- and 64-bit), XSDT's entries.
  constexpr uint32_t FADT_FIRMWARE_CTRL = 36;
  constexpr uint32_t FADT_DSDT = 40;
  constexpr uint32_t FADT_X_FIRMWARE_CTRL = 132;
  constexpr uint32_t FADT_X_DSDT = 140;
  TableBlob blob(base);
  uint64_t facs = blob.place(buildFacs(), 64);
  uint64_t dsdt = blob.place(buildDsdt());
  uint64_t fadt = blob.place(buildFadt(acpi, facs, dsdt));
  uint64_t madt = blob.place(buildMadt(acpi));
  uint64_t mcfg = blob.place(buildMcfg(acpi));
  TableBuilder xsdt("XSDT", 1);
  for (uint64_t table : {fadt, madt, mcfg}) xsdt.put64(table);
  uint64_t xsdtAddress = blob.place(xsdt.finish());

  AcpiTables tables;
  auto fadtAt = static_cast<uint32_t>(fadt - base);
  auto xsdtAt = static_cast<uint32_t>(xsdtAddress - base);
  tables.pointers = {{false, fadtAt + FADT_FIRMWARE_CTRL, 4},
                     {false, fadtAt + FADT_DSDT, 4},
                     {false, fadtAt + FADT_X_FIRMWARE_CTRL, 8},
                     {false, fadtAt + FADT_X_DSDT, 8}};
  for (uint32_t i = 0; i < 3; ++i) tables.pointers.push_back({false, xsdtAt + HEADER_SIZE + 8 * i, 8});
  tables.pointers.push_back({true, 24, 8});  // RSDP -> XSDT.
  const auto& placed = blob.tables();
  // FACS (the first) has no checksum; every other table has it at byte 9.
  for (size_t i = 1; i < placed.size(); ++i) {
    tables.checksums.push_back({false, placed[i].first + 9, placed[i].first, placed[i].second});
  }
  tables.checksums.push_back({true, 8, 0, 20});   // ACPI 1.0 part of the RSDP.
  tables.checksums.push_back({true, 32, 0, 36});  // The whole RSDP.
  tables.tables = std::move(blob.bytes());

  tables.rsdp.assign(36, 0);
  std::memcpy(tables.rsdp.data(), "RSD PTR ", 8);
  std::memcpy(tables.rsdp.data() + 9, OEM_ID, 6);
  tables.rsdp[15] = 2;  // Revision: ACPI 2.0+, XSDT valid.
  tables.rsdp[20] = 36;
  for (int i = 0; i < 8; ++i) {
    tables.rsdp[24 + static_cast<size_t>(i)] = static_cast<uint8_t>(xsdtAddress >> (8 * i));
  }
  tables.rsdp[8] = static_cast<uint8_t>(-acpiChecksum(tables.rsdp.data(), 20));
  tables.rsdp[32] = static_cast<uint8_t>(-acpiChecksum(tables.rsdp.data(), 36));
  return tables;
}

uint64_t writeAcpiTables(GuestMemory& memory, const AcpiLayout& acpi) {
  // The RSDP first (firmware scans 0xE0000-0xFFFFF for it), tables after.
  constexpr uint64_t TABLES_AT = layout::ACPI_ADDRESS + 64;
  AcpiTables tables = buildAcpiTables(acpi, TABLES_AT);
  if (TABLES_AT + tables.tables.size() > layout::ACPI_ADDRESS + layout::ACPI_SIZE) {
    throw std::length_error("ACPI tables do not fit their area");
  }
  memory.write(TABLES_AT, tables.tables);
  memory.write(layout::ACPI_ADDRESS, tables.rsdp);
  return layout::ACPI_ADDRESS;
}

}  // namespace cellvisor
