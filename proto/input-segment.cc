#include "proto/input-segment.h"

#include <new>

#include "base/sealed-memfd.h"

namespace cellvisor {

InputSegment InputSegment::create() {
  UniqueFd memfd = createSealedMemfd("input-link", sizeof(InputLinkLayout));
  Mapping mapping = mapSharedMemfd(memfd.get(), sizeof(InputLinkLayout), "input link");
  new (mapping.data()) InputLinkLayout();
  return InputSegment(std::move(memfd), std::move(mapping));
}

InputSegment InputSegment::open(UniqueFd memfd) {
  Mapping mapping = mapSharedMemfd(memfd.get(), sizeof(InputLinkLayout), "input link");
  return InputSegment(std::move(memfd), std::move(mapping));
}

}  // namespace cellvisor
