#include "proto/doorbell-pipe.h"

#include <fcntl.h>
#include <unistd.h>

#include "base/system-error.h"

namespace cellvisor {

DoorbellPipe DoorbellPipe::create() {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC | O_NONBLOCK) < 0) throwSystemError("pipe2 for a doorbell");
  return {UniqueFd(ends[0]), UniqueFd(ends[1])};
}

void ringDoorbellPipe(int writeEnd) {
  const char ring = 1;
  [[maybe_unused]] ssize_t rung = ::write(writeEnd, &ring, 1);
}

void emptyDoorbellPipe(int readEnd) {
  char bytes[256];
  for (int reads = 0; reads < 64 && ::read(readEnd, bytes, sizeof(bytes)) > 0; ++reads) {
  }
}

}  // namespace cellvisor
