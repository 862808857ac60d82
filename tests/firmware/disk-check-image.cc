#include "tests/firmware/disk-check-image.h"

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>

namespace cellvisor::testing {
namespace {

constexpr size_t PARAMETERS_OFFSET = 0x1f0;
constexpr size_t SECTOR = 512;

}  // namespace

std::string seabios() {
  const char* path = std::getenv("CELLVISOR_SEABIOS");
  return path != nullptr ? path : "/usr/share/seabios/bios-256k.bin";
}

std::string diskCheckSector() {
  const char* path = std::getenv("CELLVISOR_DISK_CHECK");
  return path != nullptr ? path : "";
}

uint32_t diskChecksum(const std::vector<uint8_t>& data) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 4 <= data.size(); i += 4) {
    uint32_t word;
    std::memcpy(&word, data.data() + i, 4);
    sum = ((sum << 1) | (sum >> 31)) + word;
  }
  return sum;
}

void writeDiskCheckImage(const std::string& path, uint16_t sectors, uint16_t rounds) {
  std::ifstream in(diskCheckSector(), std::ios::binary);
  std::vector<uint8_t> boot((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (boot.size() != SECTOR) throw std::runtime_error("disk-check sector missing: " + diskCheckSector());
  std::mt19937 random(static_cast<unsigned>(::getpid()) ^ sectors);
  std::vector<uint8_t> data(size_t{sectors} * SECTOR);
  for (auto& byte : data) byte = static_cast<uint8_t>(random());
  uint32_t expected = diskChecksum(data);
  std::memcpy(boot.data() + PARAMETERS_OFFSET, &sectors, 2);
  std::memcpy(boot.data() + PARAMETERS_OFFSET + 2, &rounds, 2);
  std::memcpy(boot.data() + PARAMETERS_OFFSET + 4, &expected, 4);
  if (::access(path.c_str(), F_OK) != 0) std::ofstream(path, std::ios::binary).flush();
  std::fstream image(path, std::ios::binary | std::ios::in | std::ios::out);
  image.write(reinterpret_cast<const char*>(boot.data()), static_cast<std::streamsize>(boot.size()));
  image.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  // Room after the data, so a read past it would still be a disk read.
  std::vector<char> tail(64 * SECTOR);
  image.write(tail.data(), static_cast<std::streamsize>(tail.size()));
  if (!image) throw std::runtime_error("cannot write " + path);
}

}  // namespace cellvisor::testing
