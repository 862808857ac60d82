#include "servers/xhci/pointer-link.h"

#include <iostream>

#include "device.capnp.h"
#include "proto/message-channel.h"

namespace cellvisor {
namespace {

constexpr unsigned MAX_EVENTS_PER_TURN = 1024;

}  // namespace

PointerLink::PointerLink(uv_loop_t* loop, const InputSegment& link, int doorbell, XhciController& controller)
    : reader_(link.reader()), doorbell_(doorbell), controller_(controller), nextTurn_(new uv_timer_t) {
  uv_timer_init(loop, nextTurn_);
  nextTurn_->data = this;
}

PointerLink::~PointerLink() {
  uv_close(reinterpret_cast<uv_handle_t*>(nextTurn_),
           [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
}

void PointerLink::drain() {
  emptyDoorbellPipe(doorbell_);
  // Paused: the state and guest memory hold still; resume() drains.
  if (ended_ || controller_.paused()) return;
  std::vector<xhci::PointerEvent> events;
  for (unsigned read = 0; read < MAX_EVENTS_PER_TURN; ++read) {
    RingReader::Status status = reader_.tryRead(scratch_);
    if (status == RingReader::Status::EMPTY) break;
    if (status == RingReader::Status::CORRUPT) {
      std::cerr << "xhci: the display corrupted the pointer link; the tablet gets no more input\n";
      ended_ = true;
      break;
    }
    try {
      ReceivedMessage message(scratch_);
      auto event = message.root<proto::InputEvent>();
      if (event.which() != proto::InputEvent::POINTER) continue;
      auto pointer = event.getPointer();
      events.push_back(
          {pointer.getButtons(), pointer.getX(), pointer.getY(), pointer.getWidth(), pointer.getHeight()});
    } catch (const std::exception&) {
      // Skipped: a message that does not parse.
    } catch (const kj::Exception&) {
    }
    if (read + 1 == MAX_EVENTS_PER_TURN) {
      // More may wait: the rest on the loop's next turn, after other work.
      uv_timer_start(
          nextTurn_, [](uv_timer_t* timer) { static_cast<PointerLink*>(timer->data)->drain(); }, 0, 0);
    }
  }
  if (!events.empty()) controller_.pointer(events);
}

}  // namespace cellvisor
