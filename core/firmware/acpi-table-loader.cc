#include "core/firmware/acpi-table-loader.h"

#include <cstring>

#include "core/firmware/fw-cfg.h"

namespace cellvisor {
namespace {

constexpr char TABLES_FILE[] = "etc/acpi/tables";
constexpr char RSDP_FILE[] = "etc/acpi/rsdp";
constexpr char LOADER_FILE[] = "etc/table-loader";

constexpr size_t COMMAND_SIZE = 128;
constexpr size_t NAME_SIZE = 56;
enum Command : uint32_t { ALLOCATE = 1, ADD_POINTER = 2, ADD_CHECKSUM = 3 };
enum Zone : uint8_t { HIGH = 1, FSEG = 2 };  // Anywhere in RAM / the BIOS's F segment.

// One command: a little-endian type, then its fields, zero-padded.
class CommandWriter {
 public:
  explicit CommandWriter(Command type) : bytes_(COMMAND_SIZE, 0) { put(type, 4); }
  void putName(const char* name) {
    std::strncpy(reinterpret_cast<char*>(bytes_.data() + at_), name, NAME_SIZE - 1);
    at_ += NAME_SIZE;
  }
  void put(uint64_t value, size_t size) {
    for (size_t i = 0; i < size; ++i) bytes_[at_ + i] = static_cast<uint8_t>(value >> (8 * i));
    at_ += size;
  }
  void appendTo(std::vector<uint8_t>& script) const {
    script.insert(script.end(), bytes_.begin(), bytes_.end());
  }

 private:
  std::vector<uint8_t> bytes_;
  size_t at_ = 0;
};

void allocate(std::vector<uint8_t>& script, const char* file, uint32_t alignment, Zone zone) {
  CommandWriter command(ALLOCATE);
  command.putName(file);
  command.put(alignment, 4);
  command.put(zone, 1);
  command.appendTo(script);
}

}  // namespace

void addAcpiTableLoader(FwCfg& fwCfg, const AcpiTables& tables) {
  std::vector<uint8_t> script;
  // The FACS inside the tables wants 64-byte alignment; the RSDP must sit
  // where an OS scans for it (the F segment), 16-byte aligned.
  allocate(script, TABLES_FILE, 64, HIGH);
  allocate(script, RSDP_FILE, 16, FSEG);
  for (const auto& pointer : tables.pointers) {
    CommandWriter command(ADD_POINTER);
    command.putName(pointer.inRsdp ? RSDP_FILE : TABLES_FILE);
    command.putName(TABLES_FILE);
    command.put(pointer.offset, 4);
    command.put(pointer.size, 1);
    command.appendTo(script);
  }
  for (const auto& checksum : tables.checksums) {
    CommandWriter command(ADD_CHECKSUM);
    command.putName(checksum.inRsdp ? RSDP_FILE : TABLES_FILE);
    command.put(checksum.field, 4);
    command.put(checksum.start, 4);
    command.put(checksum.length, 4);
    command.appendTo(script);
  }
  fwCfg.addFile(TABLES_FILE, tables.tables);
  fwCfg.addFile(RSDP_FILE, tables.rsdp);
  fwCfg.addFile(LOADER_FILE, std::move(script));
}

}  // namespace cellvisor
