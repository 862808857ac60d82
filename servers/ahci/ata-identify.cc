#include "servers/ahci/ata-identify.h"

#include <algorithm>
#include <string>

namespace cellvisor::ata {
namespace {

// ATA strings: space padded, two characters a word, the first in the high byte.
void putAtaString(std::vector<uint8_t>& identify, int word, int words, const std::string& text) {
  for (int i = 0; i < 2 * words; ++i) {
    char c = static_cast<size_t>(i) < text.size() ? text[static_cast<size_t>(i)] : ' ';
    identify[static_cast<size_t>(2 * word + (i ^ 1))] = static_cast<uint8_t>(c);
  }
}

}  // namespace

void putWord(std::vector<uint8_t>& page, int word, uint16_t value) {
  page[static_cast<size_t>(2 * word)] = static_cast<uint8_t>(value);
  page[static_cast<size_t>(2 * word + 1)] = static_cast<uint8_t>(value >> 8);
}

void sealChecksum(std::vector<uint8_t>& page) {
  uint8_t sum = 0;
  for (size_t i = 0; i < PAGE - 1; ++i) sum = static_cast<uint8_t>(sum + page[i]);
  page[PAGE - 1] = static_cast<uint8_t>(-sum);
}

std::vector<uint8_t> identifyDevice(const AhciPortOptions& options, uint64_t sectors, uint32_t sectorSize,
                                    uint32_t queueDepth) {
  std::vector<uint8_t> id(PAGE, 0);
  uint64_t cylinders = std::min<uint64_t>(sectors / (16 * 63), 16383);
  putWord(id, 0, 0x0040);
  putWord(id, 1, static_cast<uint16_t>(cylinders));
  putWord(id, 3, 16);
  putWord(id, 6, 63);
  putAtaString(id, 10, 10, options.serial);
  putAtaString(id, 23, 4, options.revision.empty() ? "1.0" : options.revision);
  putAtaString(id, 27, 20, options.model.empty() ? "cellvisor AHCI disk" : options.model);
  putWord(id, 47, 0x8010);
  putWord(id, 49, 0x0b00);  // LBA, DMA, IORDY.
  putWord(id, 50, 0x4000);
  putWord(id, 53, 0x0007);
  putWord(id, 54, static_cast<uint16_t>(cylinders));
  putWord(id, 55, 16);
  putWord(id, 56, 63);
  uint64_t chs = cylinders * 16 * 63;
  putWord(id, 57, static_cast<uint16_t>(chs));
  putWord(id, 58, static_cast<uint16_t>(chs >> 16));
  putWord(id, 59, 0x0110);
  uint64_t lba28 = std::min<uint64_t>(sectors, 0x0fffffff);
  putWord(id, 60, static_cast<uint16_t>(lba28));
  putWord(id, 61, static_cast<uint16_t>(lba28 >> 16));
  putWord(id, 62, 0x0007);
  putWord(id, 63, 0x0407);
  putWord(id, 64, 0x0003);
  for (int word = 65; word <= 68; ++word) putWord(id, word, 120);
  if (!options.readOnly && !options.noDelete) putWord(id, 69, 0x4020);  // Deterministic zeroes after TRIM.
  putWord(id, 75, static_cast<uint16_t>(queueDepth - 1));
  putWord(id, 76, 0x010e);  // NCQ, SATA Gen1-3.
  putWord(id, 77, 0x0006);
  putWord(id, 80, 0x03f0);  // ATA-4 to ACS-2.
  putWord(id, 81, 0x0028);
  putWord(id, 82, 0x4020);  // NOP, write cache.
  putWord(id, 83, 0x7400);  // FLUSH CACHE EXT, FLUSH CACHE, LBA48.
  putWord(id, 84, 0x4000);
  putWord(id, 85, 0x4020);
  putWord(id, 86, 0x3400);
  putWord(id, 87, 0x4000);
  putWord(id, 88, 0x407f);  // UDMA 0-6, UDMA 6 selected.
  for (int i = 0; i < 4; ++i) putWord(id, 100 + i, static_cast<uint16_t>(sectors >> (16 * i)));
  putWord(id, 105, 1);
  uint32_t physical = options.physicalSectorSize != 0 ? options.physicalSectorSize : sectorSize;
  uint16_t word106 = 0x4000;
  if (physical > sectorSize) word106 |= 0x2000 | static_cast<uint16_t>(__builtin_ctz(physical / sectorSize));
  if (sectorSize > 512) {
    word106 |= 0x1000;
    putWord(id, 117, static_cast<uint16_t>(sectorSize / 2));
    putWord(id, 118, static_cast<uint16_t>((sectorSize / 2) >> 16));
  }
  putWord(id, 106, word106);
  if (!options.readOnly && !options.noDelete) putWord(id, 169, 0x0001);  // TRIM.
  putWord(id, 217, options.rotationRate);
  putWord(id, 222, 0x1020);
  id[510] = 0xa5;  // Signature, then the checksum over it.
  sealChecksum(id);
  return id;
}

std::vector<uint8_t> identifyPacketDevice(const AhciPortOptions& options) {
  std::vector<uint8_t> id(PAGE, 0);
  putWord(id, 0, 0x85c0);  // ATAPI, CD-ROM, removable, 12-byte packets.
  putAtaString(id, 10, 10, options.serial);
  putAtaString(id, 23, 4, options.revision.empty() ? "1.0" : options.revision);
  putAtaString(id, 27, 20, options.model.empty() ? "cellvisor AHCI CD-ROM" : options.model);
  putWord(id, 49, 0x0300);
  putWord(id, 53, 0x0007);
  putWord(id, 62, 0x0007);
  putWord(id, 63, 0x0007);
  putWord(id, 64, 0x0003);
  for (int word = 65; word <= 68; ++word) putWord(id, word, 120);
  putWord(id, 71, 30);
  putWord(id, 72, 30);
  putWord(id, 76, 0x000e);
  putWord(id, 80, 0x01f0);
  putWord(id, 82, 0x4210);  // NOP, DEVICE RESET, PACKET.
  putWord(id, 83, 0x4000);
  putWord(id, 84, 0x4000);
  putWord(id, 85, 0x4210);
  putWord(id, 86, 0x0000);
  putWord(id, 87, 0x4000);
  putWord(id, 88, 0x203f);
  id[510] = 0xa5;  // Signature, then the checksum over it.
  sealChecksum(id);
  return id;
}

}  // namespace cellvisor::ata
