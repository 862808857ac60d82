// Shared memory handed between processes that do not trust each other: a
// memfd sealed at its size, so that no holder can shrink it under another's
// mapping (a SIGBUS in the peer), and the receiving side's check that what
// it was handed has the size it expects before mapping it.
#pragma once

#include <cstdint>

#include "base/mapping.h"
#include "base/unique-fd.h"

namespace cellvisor {

// Zero-filled, `bytes` long, sealed against shrinking, growing and new seals.
UniqueFd createSealedMemfd(const char* name, uint64_t bytes);
// Maps all of `fd` read-write and shared; throws std::runtime_error naming
// `what` when its size is not `bytes`.
Mapping mapSharedMemfd(int fd, uint64_t bytes, const char* what);

}  // namespace cellvisor
