// The 512-byte pages an ATA device describes itself with: IDENTIFY DEVICE
// for a disk, IDENTIFY PACKET DEVICE for an ATAPI CD-ROM, and the helpers
// for log pages (little-endian words, the checksum in the last byte).
#pragma once

#include <cstdint>
#include <vector>

#include "servers/ahci/ahci-options.h"

namespace cellvisor::ata {

constexpr size_t PAGE = 512;

void putWord(std::vector<uint8_t>& page, int word, uint16_t value);
// Byte 511 such that the page's bytes sum to zero (identify pages carry the
// signature 0xA5 in byte 510 first).
void sealChecksum(std::vector<uint8_t>& page);

// `sectors` of `sectorSize` bytes; `queueDepth` NCQ tags.
std::vector<uint8_t> identifyDevice(const AhciPortOptions& options, uint64_t sectors, uint32_t sectorSize,
                                    uint32_t queueDepth);
std::vector<uint8_t> identifyPacketDevice(const AhciPortOptions& options);

}  // namespace cellvisor::ata
