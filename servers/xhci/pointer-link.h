// The xHCI server's end of a display's pointer link (proto/input-segment.h):
// VNC clients' pointer events for the tablet. The display server is not
// trusted: messages that do not parse are skipped, a corrupt ring ends the
// link, and a flood is read a bounded amount per turn of the loop. Events
// are read before the transaction that applies them commits, so a server
// killed in between loses them: motion is absolute (the next event puts
// the cursor right), only a click in that instant could be lost.
#pragma once

#include <uv.h>

#include <cstdint>
#include <vector>

#include "proto/input-segment.h"
#include "servers/xhci/xhci-controller.h"

namespace cellvisor {

class PointerLink {
 public:
  // `doorbell` is the read end of the link's pipe.
  PointerLink(uv_loop_t* loop, const InputSegment& link, int doorbell, XhciController& controller);
  ~PointerLink();
  PointerLink(const PointerLink&) = delete;
  PointerLink& operator=(const PointerLink&) = delete;

  // The doorbell rang (or the controller resumed): apply what the ring holds.
  void drain();

 private:
  RingReader reader_;
  int doorbell_;
  XhciController& controller_;
  uv_timer_t* nextTurn_;
  std::vector<uint8_t> scratch_;
  bool ended_ = false;
};

}  // namespace cellvisor
