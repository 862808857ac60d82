#include "tests/firmware/disk-check-image.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>

namespace cellvisor::testing {
namespace {

constexpr size_t PARAMETERS_OFFSET = 0x1f0;
constexpr size_t SECTOR = 512;
constexpr size_t CD_SECTOR = 2048;

struct Parameters {
  uint16_t sectors;
  uint16_t rounds;
  uint32_t expected;
  uint32_t start;
  uint8_t shift;  // A sector is 4 << shift bytes.
  uint8_t chunk;  // Sectors an int 13h read asks for (a 32 KiB buffer).
} __attribute__((packed));
static_assert(sizeof(Parameters) == 14);

std::vector<uint8_t> readSector() {
  std::ifstream in(diskCheckSector(), std::ios::binary);
  std::vector<uint8_t> boot((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (boot.size() != SECTOR) throw std::runtime_error("disk-check sector missing: " + diskCheckSector());
  return boot;
}

std::vector<uint8_t> randomBytes(size_t size, unsigned seed) {
  std::mt19937 random(static_cast<unsigned>(::getpid()) ^ seed);
  std::vector<uint8_t> data(size);
  for (auto& byte : data) byte = static_cast<uint8_t>(random());
  return data;
}

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
  std::vector<uint8_t> boot = readSector();
  std::vector<uint8_t> data = randomBytes(size_t{sectors} * SECTOR, sectors);
  Parameters parameters{sectors, rounds, diskChecksum(data), 1, 7, 64};
  std::memcpy(boot.data() + PARAMETERS_OFFSET, &parameters, sizeof(parameters));
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

namespace cellvisor::testing {

bool writeDiskCheckIso(const std::string& path, uint16_t rounds) {
  if (std::system("command -v xorriso >/dev/null 2>&1") != 0) return false;
  std::string tree = path + ".tree";
  std::filesystem::create_directories(tree);
  std::vector<uint8_t> boot = readSector();
  boot.resize(CD_SECTOR, 0);  // The boot image is loaded as one CD sector (four 512-byte ones).
  std::vector<uint8_t> data = randomBytes(256 * CD_SECTOR, rounds);
  std::ofstream(tree + "/boot.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(boot.data()), static_cast<std::streamsize>(boot.size()));
  std::ofstream(tree + "/data.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  std::string command = "xorriso -as mkisofs -quiet -b boot.bin -no-emul-boot -boot-load-size 4 -o '" + path +
                        "' '" + tree + "' >/dev/null 2>&1";
  int status = std::system(command.c_str());
  std::filesystem::remove_all(tree);
  if (status != 0) throw std::runtime_error("xorriso failed: " + command);
  // Find where xorriso put the data and the boot image, then tell the boot
  // image where to read.
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> iso((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto find = [&](const std::vector<uint8_t>& what, size_t length) -> size_t {
    for (size_t at = 0; at + length <= iso.size(); at += CD_SECTOR) {
      if (std::memcmp(iso.data() + at, what.data(), length) == 0) return at;
    }
    throw std::runtime_error("not found in the ISO");
  };
  size_t dataAt = find(data, 64);
  size_t bootAt = find(boot, PARAMETERS_OFFSET);
  Parameters parameters{static_cast<uint16_t>(data.size() / CD_SECTOR), rounds, diskChecksum(data),
                        static_cast<uint32_t>(dataAt / CD_SECTOR),      9,      16};
  std::memcpy(iso.data() + bootAt + PARAMETERS_OFFSET, &parameters, sizeof(parameters));
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(iso.data()), static_cast<std::streamsize>(iso.size()));
  return true;
}

}  // namespace cellvisor::testing
