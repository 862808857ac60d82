// A system call's name from its number, for reports of sandbox violations
// (the server that broke its policy, the supervisor that says which call).
#pragma once

#include <cstdint>
#include <string>

namespace cellvisor {

// "openat", or "syscall N" for a number this architecture does not name.
std::string syscallName(uint32_t number);

}  // namespace cellvisor
