// Disk images for the disk-check boot sector (tests/firmware/disk-check.S):
// LBA 0 the sector, patched to read `sectors` sectors of random data from
// LBA 1 `rounds` times and expect their checksum.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cellvisor::testing {

// Debian's SeaBIOS (CELLVISOR_SEABIOS overrides).
std::string seabios();
// The built boot sector (CELLVISOR_DISK_CHECK).
std::string diskCheckSector();
// The checksum disk-check computes: rotate left by one, add the next dword.
uint32_t diskChecksum(const std::vector<uint8_t>& data);
// Writes the image at `path` from offset 0, keeping what lies beyond (an
// existing disk keeps its size).
void writeDiskCheckImage(const std::string& path, uint16_t sectors, uint16_t rounds);
// An ISO 9660 image (made with xorriso) whose El Torito no-emulation boot
// image is disk-check, told to read a 512 KiB file on the same CD `rounds`
// times through int 13h in 2048-byte sectors. False if xorriso is missing.
bool writeDiskCheckIso(const std::string& path, uint16_t rounds);

}  // namespace cellvisor::testing
