#include "base/syscall-name.h"

#include <seccomp.h>

#include <cstdlib>

namespace cellvisor {

std::string syscallName(uint32_t number) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, static_cast<int>(number));
  std::string text = name != nullptr ? name : "syscall " + std::to_string(number);
  std::free(name);
  return text;
}

}  // namespace cellvisor
