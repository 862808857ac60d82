// A doorbell between two processes that trust each other only so far: a
// pipe, its write end to the side that rings, its read end to the side
// that waits. Unlike an eventfd (one open file for both sides, its
// O_NONBLOCK flag and counter shared), neither side can make the other's
// end block or take the other's wake-ups: each holds only its own end,
// non-blocking whatever the peer does to its own. The request and reply
// doorbells of a device server's channel and its input links are these.
#pragma once

#include "base/unique-fd.h"

namespace cellvisor {

struct DoorbellPipe {
  UniqueFd readEnd;
  UniqueFd writeEnd;
  // Both ends non-blocking and close-on-exec.
  static DoorbellPipe create();
};

// One wake-up. A full pipe already holds plenty of them: nothing is lost.
void ringDoorbellPipe(int writeEnd);
// Takes every wake-up waiting (a bounded amount of reading).
void emptyDoorbellPipe(int readEnd);

}  // namespace cellvisor
