#include "base/system-error.h"

#include "base/mapping.h"

namespace cellvisor {

void throwSystemError(const std::string& what, int err) {
  throw std::system_error(err, std::generic_category(), what);
}

Mapping Mapping::map(int fd, size_t size, int prot, int flags, off_t offset) {
  void* data = ::mmap(nullptr, size, prot, flags, fd, offset);
  if (data == MAP_FAILED) throwSystemError("mmap");
  return Mapping(data, size);
}

Mapping Mapping::anonymous(size_t size) {
  return map(-1, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
}

}  // namespace cellvisor
