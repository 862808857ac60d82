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
  // A read that does not fill the buffer emptied the pipe: on the channel's
  // path that is one system call a wake-up, as an eventfd's was.
  char bytes[256];
  for (int reads = 0; reads < 64; ++reads) {
    if (::read(readEnd, bytes, sizeof(bytes)) < static_cast<ssize_t>(sizeof(bytes))) return;
  }
}

}  // namespace cellvisor
