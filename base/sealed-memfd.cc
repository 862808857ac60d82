#include "base/sealed-memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

#include "base/system-error.h"

namespace cellvisor {

UniqueFd createSealedMemfd(const char* name, uint64_t bytes) {
  UniqueFd memfd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!memfd) throwSystemError(std::string("memfd_create ") + name);
  if (::ftruncate(memfd.get(), static_cast<off_t>(bytes)) < 0)
    throwSystemError(std::string("ftruncate ") + name);
  if (::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
    throwSystemError(std::string("seal ") + name);
  return memfd;
}

Mapping mapSharedMemfd(int fd, uint64_t bytes, const char* what) {
  struct stat st {};
  if (::fstat(fd, &st) < 0) throwSystemError(std::string("fstat ") + what);
  if (static_cast<uint64_t>(st.st_size) != bytes) {
    throw std::runtime_error(std::string(what) + " has the wrong size (" + std::to_string(st.st_size) +
                             " bytes, not " + std::to_string(bytes) + ")");
  }
  return Mapping::map(fd, bytes, PROT_READ | PROT_WRITE, MAP_SHARED);
}

}  // namespace cellvisor
