// The rings: commands (xHCI 4.6), device slots and their contexts, and
// transfers on the tablet's control and interrupt endpoints (4.11). Called
// inside a transaction. Nothing read from guest memory is trusted: every
// pointer is checked against RAM, ring walks are bounded (a ring of links
// pointing at each other ends the walk, not the server), and an endpoint
// the device does not have answers with a transaction error.
#include <atomic>
#include <cstring>

#include "base/guest-memory.h"
#include "servers/xhci/xhci-controller.h"

namespace cellvisor {

using namespace xhci;

namespace {

// TRBs one ring walk takes at most before it waits for the next doorbell.
constexpr unsigned MAX_TRBS_PER_WALK = 256;
// TRBs of one transfer descriptor (a HID driver's have one to three).
constexpr size_t MAX_TD_TRBS = 64;
// Control transfers' data stage, at most (descriptors are far smaller).
constexpr uint32_t MAX_CONTROL_DATA = 4096;

uint32_t load32(const uint8_t* at) {
  uint32_t value;
  std::memcpy(&value, at, 4);
  return value;
}

void store32(uint8_t* at, uint32_t value) {
  std::memcpy(at, &value, 4);
}

uint64_t load64(const uint8_t* at) {
  uint64_t value;
  std::memcpy(&value, at, 8);
  return value;
}

void store64(uint8_t* at, uint64_t value) {
  std::memcpy(at, &value, 8);
}

}  // namespace

std::optional<Trb> XhciController::fetch(uint64_t address) {
  uint8_t* at = memory_.translate(address, sizeof(Trb));
  if (at == nullptr) return std::nullopt;
  Trb trb;
  // The driver writes the cycle bit last: read it first, the rest after.
  trb.control =
      std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(at + 12)).load(std::memory_order_acquire);
  std::memcpy(&trb, at, 12);
  return trb;
}

void XhciController::runEverything() {
  ControllerState& c = s();
  if (!(c.usbcmd & CMD_RUN) || paused_) return;
  if (c.commandRunning) runCommands();
  for (uint8_t slot = 1; slot <= MAX_SLOTS; ++slot) {
    if (!c.slots[slot].enabled) continue;
    for (uint8_t dci = 1; dci < ENDPOINTS; ++dci) {
      if (c.slots[slot].endpoints[dci].state == EP_RUNNING) runEndpoint(slot, dci);
    }
  }
}

// ---- Commands ----

void XhciController::runCommands() {
  ControllerState& c = s();
  for (unsigned walked = 0; walked < MAX_TRBS_PER_WALK && c.commandRunning && (c.usbcmd & CMD_RUN);
       ++walked) {
    // A command posts at most two events (Stop Endpoint: the stopped TD
    // and its completion); it goes on when the driver frees some (ERDP).
    if (eventRoom() < 2) return;
    std::optional<Trb> trb = fetch(c.commandDequeue);
    if (!trb) return hostSystemError();
    if ((trb->control & TRB_CYCLE) != c.commandCycle) return;  // Nothing more yet.
    if (trbType(*trb) == LINK) {
      if (trb->control & TRB_TOGGLE_CYCLE) c.commandCycle ^= 1;
      c.commandDequeue = trb->parameter & ~0xfull;
      continue;
    }
    uint64_t address = c.commandDequeue;
    c.commandDequeue += sizeof(Trb);
    command(*trb, address);
  }
}

void XhciController::command(const Trb& trb, uint64_t address) {
  uint8_t slot = static_cast<uint8_t>(trbSlot(trb));
  uint8_t dci = static_cast<uint8_t>(trbEndpoint(trb));
  bool slotValid = slot >= 1 && slot <= MAX_SLOTS && s().slots[slot].enabled;
  bool endpointValid = dci >= 1 && dci < ENDPOINTS;
  uint32_t completion = TRB_ERROR;
  switch (trbType(trb)) {
    case ENABLE_SLOT:
      completion = enableSlot(slot);
      break;
    case NO_OP_COMMAND:
      completion = SUCCESS;
      slot = 0;
      break;
    case DISABLE_SLOT:
    case ADDRESS_DEVICE:
    case CONFIGURE_ENDPOINT:
    case EVALUATE_CONTEXT:
    case RESET_DEVICE:
      if (!slotValid) {
        completion = SLOT_NOT_ENABLED;
        break;
      }
      if (trbType(trb) == DISABLE_SLOT) {
        disableEndpoints(slot, 1);
        s().slots[slot] = SlotState{};
        completion = SUCCESS;
      }
      if (trbType(trb) == ADDRESS_DEVICE) completion = addressDevice(trb, slot);
      if (trbType(trb) == CONFIGURE_ENDPOINT) completion = configureEndpoint(trb, slot);
      if (trbType(trb) == EVALUATE_CONTEXT) completion = evaluateContext(trb, slot);
      if (trbType(trb) == RESET_DEVICE) completion = resetDevice(slot);
      break;
    case RESET_ENDPOINT:
    case STOP_ENDPOINT:
    case SET_TR_DEQUEUE:
      if (!slotValid) {
        completion = SLOT_NOT_ENABLED;
        break;
      }
      if (!endpointValid) {
        completion = TRB_ERROR;
        break;
      }
      if (trbType(trb) == RESET_ENDPOINT) completion = resetEndpoint(slot, dci);
      if (trbType(trb) == STOP_ENDPOINT) completion = stopEndpoint(slot, dci);
      if (trbType(trb) == SET_TR_DEQUEUE) completion = setDequeue(trb, slot, dci);
      break;
    default:
      slot = 0;
      break;
  }
  commandCompletion(address, completion, slot);
}

uint32_t XhciController::enableSlot(uint8_t& slot) {
  ControllerState& c = s();
  uint8_t enabled = static_cast<uint8_t>(std::min<uint32_t>(c.config & 0xff, MAX_SLOTS));
  for (slot = 1; slot <= enabled; ++slot) {
    if (c.slots[slot].enabled) continue;
    c.slots[slot] = SlotState{};
    c.slots[slot].enabled = 1;
    c.slots[slot].state = SLOT_DISABLED;  // "Enabled": the slot state reads 0 until addressed.
    return SUCCESS;
  }
  slot = 0;
  return NO_SLOTS;
}

uint8_t* XhciController::inputContext(const Trb& trb) {
  // Input control context, slot context, 31 endpoint contexts.
  return memory_.translate(trb.parameter & ~0xfull, CONTEXT_BYTES * 33);
}

uint8_t* XhciController::outputContext(uint8_t slot, uint8_t index) {
  uint64_t base = s().slots[slot].outputContext;
  if (base == 0) return nullptr;
  return memory_.translate(base + CONTEXT_BYTES * index, CONTEXT_BYTES);
}

void XhciController::writeSlotState(uint8_t slot) {
  const SlotState& state = s().slots[slot];
  uint8_t* context = outputContext(slot, 0);
  if (context == nullptr) return;
  store32(context + 12, uint32_t{state.state} << 27 | state.address);
}

void XhciController::writeEndpointContext(uint8_t slot, uint8_t dci) {
  const EndpointState& endpoint = s().slots[slot].endpoints[dci];
  uint8_t* context = outputContext(slot, dci);
  if (context == nullptr) return;
  store32(context, (load32(context) & ~7u) | endpoint.state);
  store64(context + 8, endpoint.dequeue | endpoint.cycle);
}

void XhciController::disableEndpoints(uint8_t slot, uint8_t from) {
  for (uint8_t dci = from; dci < ENDPOINTS; ++dci) {
    EndpointState& endpoint = s().slots[slot].endpoints[dci];
    if (endpoint.state == EP_DISABLED) continue;
    endpoint = EndpointState{};
    writeEndpointContext(slot, dci);
  }
}

uint32_t XhciController::addressDevice(const Trb& trb, uint8_t slot) {
  ControllerState& c = s();
  SlotState& state = c.slots[slot];
  bool blockSetAddress = trb.control & TRB_BSR;
  // From Enabled, or from Default after a first Address Device with BSR.
  if (state.state != SLOT_DISABLED && !(state.state == SLOT_DEFAULT && !blockSetAddress))
    return CONTEXT_STATE_ERROR;
  uint8_t* input = inputContext(trb);
  if (input == nullptr) return PARAMETER_ERROR;
  if ((load32(input + 4) & 3) != 3) return PARAMETER_ERROR;  // A0 and A1 must be set.
  const uint8_t* inSlot = input + CONTEXT_BYTES;
  const uint8_t* inControl = input + 2 * CONTEXT_BYTES;
  uint32_t port = (load32(inSlot + 4) >> 16) & 0xff;
  if (port == 0 || port > PORTS) return PARAMETER_ERROR;
  uint32_t portsc = c.ports[port - 1].portsc;
  if (!(portsc & PORT_CCS) || !(portsc & PORT_PED)) return USB_TRANSACTION_ERROR;  // Nobody answers there.
  const uint8_t* entry = memory_.translate(c.dcbaap + 8ull * slot, 8);
  if (entry == nullptr) return PARAMETER_ERROR;
  uint64_t output = load64(entry) & ~0x3full;
  if (output == 0 || memory_.translate(output, CONTEXT_BYTES * ENDPOINTS) == nullptr) return PARAMETER_ERROR;
  uint64_t dequeue = load64(inControl + 8);
  if (memory_.translate(dequeue & ~0xfull, sizeof(Trb)) == nullptr) return PARAMETER_ERROR;

  state.outputContext = output;
  state.port = static_cast<uint8_t>(port);
  state.state = blockSetAddress ? SLOT_DEFAULT : SLOT_ADDRESSED;
  state.address = blockSetAddress ? 0 : slot;
  uint8_t* outSlot = outputContext(slot, 0);
  uint8_t* outControl = outputContext(slot, 1);
  std::memcpy(outSlot, inSlot, CONTEXT_BYTES);
  std::memcpy(outControl, inControl, CONTEXT_BYTES);
  EndpointState& endpoint = state.endpoints[1];
  endpoint = EndpointState{};
  endpoint.dequeue = dequeue & ~0xfull;
  endpoint.cycle = dequeue & 1;
  endpoint.state = EP_RUNNING;
  endpoint.type = EP_CONTROL;
  writeSlotState(slot);
  writeEndpointContext(slot, 1);
  return SUCCESS;
}

uint32_t XhciController::configureEndpoint(const Trb& trb, uint8_t slot) {
  SlotState& state = s().slots[slot];
  if (state.state != SLOT_ADDRESSED && state.state != SLOT_CONFIGURED) return CONTEXT_STATE_ERROR;
  if (trb.control & TRB_DC) {
    disableEndpoints(slot, 2);
    state.state = SLOT_ADDRESSED;
    writeSlotState(slot);
    return SUCCESS;
  }
  uint8_t* input = inputContext(trb);
  if (input == nullptr) return PARAMETER_ERROR;
  uint32_t drop = load32(input) & ~3u;
  uint32_t add = load32(input + 4);
  // Checked before anything changes: a bad ring pointer fails the command.
  for (uint8_t dci = 2; dci < ENDPOINTS; ++dci) {
    if (!(add & (1u << dci))) continue;
    uint64_t dequeue = load64(input + CONTEXT_BYTES * (dci + 1) + 8);
    if (memory_.translate(dequeue & ~0xfull, sizeof(Trb)) == nullptr) return PARAMETER_ERROR;
  }
  for (uint8_t dci = 2; dci < ENDPOINTS; ++dci) {
    if (drop & (1u << dci)) {
      state.endpoints[dci] = EndpointState{};
      writeEndpointContext(slot, dci);
    }
  }
  for (uint8_t dci = 2; dci < ENDPOINTS; ++dci) {
    if (!(add & (1u << dci))) continue;
    const uint8_t* in = input + CONTEXT_BYTES * (dci + 1);
    uint8_t* out = outputContext(slot, dci);
    if (out != nullptr) std::memcpy(out, in, CONTEXT_BYTES);
    EndpointState& endpoint = state.endpoints[dci];
    uint64_t dequeue = load64(in + 8);
    endpoint = EndpointState{};
    endpoint.dequeue = dequeue & ~0xfull;
    endpoint.cycle = dequeue & 1;
    endpoint.state = EP_RUNNING;
    endpoint.type = static_cast<uint8_t>((load32(in + 4) >> 3) & 7);
    writeEndpointContext(slot, dci);
  }
  if (add & 1) {
    // The slot context's Context Entries follow the driver's.
    uint8_t* out = outputContext(slot, 0);
    if (out != nullptr) {
      uint32_t entries = load32(input + CONTEXT_BYTES) & (0x1fu << 27);
      store32(out, (load32(out) & ~(0x1fu << 27)) | entries);
    }
  }
  bool any = false;
  for (uint8_t dci = 2; dci < ENDPOINTS; ++dci) any |= state.endpoints[dci].state != EP_DISABLED;
  state.state = any ? SLOT_CONFIGURED : SLOT_ADDRESSED;
  writeSlotState(slot);
  return SUCCESS;
}

uint32_t XhciController::evaluateContext(const Trb& trb, uint8_t slot) {
  if (s().slots[slot].state == SLOT_DISABLED) return CONTEXT_STATE_ERROR;
  uint8_t* input = inputContext(trb);
  if (input == nullptr) return PARAMETER_ERROR;
  uint32_t add = load32(input + 4);
  if (add & 1) {
    // Max Exit Latency and Interrupter Target.
    uint8_t* out = outputContext(slot, 0);
    const uint8_t* in = input + CONTEXT_BYTES;
    if (out != nullptr) {
      store32(out + 4, (load32(out + 4) & ~0xffffu) | (load32(in + 4) & 0xffff));
      store32(out + 8, (load32(out + 8) & ~(0x3ffu << 22)) | (load32(in + 8) & (0x3ffu << 22)));
    }
  }
  if (add & 2) {
    // The default control endpoint's Max Packet Size, once the driver read it.
    uint8_t* out = outputContext(slot, 1);
    const uint8_t* in = input + 2 * CONTEXT_BYTES;
    if (out != nullptr) store32(out + 4, (load32(out + 4) & 0xffff) | (load32(in + 4) & 0xffff0000u));
  }
  return SUCCESS;
}

uint32_t XhciController::resetEndpoint(uint8_t slot, uint8_t dci) {
  EndpointState& endpoint = s().slots[slot].endpoints[dci];
  if (endpoint.state != EP_HALTED) return CONTEXT_STATE_ERROR;
  endpoint.state = EP_STOPPED;
  writeEndpointContext(slot, dci);
  return SUCCESS;
}

uint32_t XhciController::stopEndpoint(uint8_t slot, uint8_t dci) {
  EndpointState& endpoint = s().slots[slot].endpoints[dci];
  if (endpoint.state != EP_RUNNING) return CONTEXT_STATE_ERROR;
  // A TD waiting for the device (the tablet's interrupt transfer waits for
  // the pointer to move) is reported stopped, as a controller reports the
  // TD it was working on.
  std::vector<RingTrb> td;
  RingPosition after{};
  if (gatherTd(endpoint, td, false, after)) {
    transferEvent(td.front().address, trbTransferLength(td.front().trb), STOPPED, slot, dci);
  }
  endpoint.state = EP_STOPPED;
  writeEndpointContext(slot, dci);
  return SUCCESS;
}

uint32_t XhciController::setDequeue(const Trb& trb, uint8_t slot, uint8_t dci) {
  EndpointState& endpoint = s().slots[slot].endpoints[dci];
  if (endpoint.state != EP_STOPPED && endpoint.state != EP_ERROR) return CONTEXT_STATE_ERROR;
  uint64_t dequeue = trb.parameter & ~0xfull;
  if (memory_.translate(dequeue, sizeof(Trb)) == nullptr) return PARAMETER_ERROR;
  endpoint.dequeue = dequeue;
  endpoint.cycle = trb.parameter & 1;
  writeEndpointContext(slot, dci);
  return SUCCESS;
}

uint32_t XhciController::resetDevice(uint8_t slot) {
  SlotState& state = s().slots[slot];
  if (state.state == SLOT_DISABLED || state.state == SLOT_DEFAULT) return CONTEXT_STATE_ERROR;
  disableEndpoints(slot, 2);
  state.state = SLOT_DEFAULT;
  state.address = 0;
  if (tabletSlot(slot)) UsbTablet::reset(s().tablet);
  writeSlotState(slot);
  return SUCCESS;
}

// ---- Transfers ----

bool XhciController::tabletSlot(uint8_t slot) const {
  return tablet_ && s().slots[slot].port == 1;
}

void XhciController::ringEndpoint(uint8_t slot, uint8_t dci) {
  if (slot < 1 || slot > MAX_SLOTS || !s().slots[slot].enabled || dci < 1 || dci >= ENDPOINTS) return;
  EndpointState& endpoint = s().slots[slot].endpoints[dci];
  // A stopped endpoint runs again when rung; halted ones wait for Reset Endpoint.
  if (endpoint.state == EP_STOPPED) {
    endpoint.state = EP_RUNNING;
    writeEndpointContext(slot, dci);
  }
  if (endpoint.state == EP_RUNNING && !paused_) runEndpoint(slot, dci);
}

void XhciController::runEndpoint(uint8_t slot, uint8_t dci) {
  for (unsigned taken = 0; taken < MAX_TRBS_PER_WALK; ++taken) {
    if (!(s().usbcmd & CMD_RUN) || s().slots[slot].endpoints[dci].state != EP_RUNNING) return;
    bool took = dci == 1 ? controlTransfer(slot) : interruptTransfer(slot, dci);
    if (!took) return;
  }
}

void XhciController::runTablet() {
  if (paused_ || !(s().usbcmd & CMD_RUN)) return;
  for (uint8_t slot = 1; slot <= MAX_SLOTS; ++slot) {
    const SlotState& state = s().slots[slot];
    if (state.enabled && tabletSlot(slot) && state.endpoints[UsbTablet::INTERRUPT_DCI].state == EP_RUNNING)
      runEndpoint(slot, UsbTablet::INTERRUPT_DCI);
  }
}

bool XhciController::gatherTd(const EndpointState& endpoint, std::vector<RingTrb>& td, bool control,
                              RingPosition& after) {
  td.clear();
  uint64_t at = endpoint.dequeue;
  uint8_t cycle = endpoint.cycle;
  for (unsigned walked = 0; walked < MAX_TRBS_PER_WALK && td.size() < MAX_TD_TRBS; ++walked) {
    std::optional<Trb> trb = fetch(at);
    if (!trb) {
      hostSystemError();
      return false;
    }
    if ((trb->control & TRB_CYCLE) != cycle) return false;  // The driver has not written the rest yet.
    if (trbType(*trb) == LINK) {
      if (trb->control & TRB_TOGGLE_CYCLE) cycle ^= 1;
      at = trb->parameter & ~0xfull;
      continue;
    }
    td.push_back({*trb, at});
    at += sizeof(Trb);
    bool last = control ? trbType(*trb) == STATUS_STAGE : !(trb->control & TRB_CHAIN);
    if (last) {
      after = {at, cycle};
      return true;
    }
  }
  return false;
}

void XhciController::halt(uint8_t slot, uint8_t dci) {
  s().slots[slot].endpoints[dci].state = EP_HALTED;
  writeEndpointContext(slot, dci);
}

bool XhciController::deliverIn(const std::vector<RingTrb>& td, size_t first, size_t last,
                               std::span<const uint8_t> data, uint8_t slot, uint8_t dci) {
  size_t offset = 0;
  bool shortPacket = false;
  for (size_t i = first; i < last; ++i) {
    const Trb& trb = td[i].trb;
    uint32_t type = trbType(trb);
    if (type == EVENT_DATA) {
      if (trb.control & TRB_IOC)
        transferEvent(trb.parameter, static_cast<uint32_t>(offset), SUCCESS, slot, dci, true);
      continue;
    }
    if (type == NO_OP) {
      if ((trb.control & TRB_IOC) && !shortPacket) transferEvent(td[i].address, 0, SUCCESS, slot, dci);
      continue;
    }
    if (shortPacket) continue;  // The rest of a short TD is skipped.
    uint32_t length = trbTransferLength(trb);
    size_t count = std::min<size_t>(length, data.size() - offset);
    if (count > 0) {
      uint8_t* buffer = (trb.control & TRB_IDT) ? nullptr : memory_.translate(trb.parameter, count);
      if (buffer == nullptr) {
        transferEvent(td[i].address, length, TRB_ERROR, slot, dci);
        return true;
      }
      std::memcpy(buffer, data.data() + offset, count);
      offset += count;
    }
    uint32_t residual = static_cast<uint32_t>(length - count);
    if (residual > 0) {
      shortPacket = true;
      if (trb.control & (TRB_ISP | TRB_IOC)) transferEvent(td[i].address, residual, SHORT_PACKET, slot, dci);
    } else if (trb.control & TRB_IOC) {
      transferEvent(td[i].address, 0, SUCCESS, slot, dci);
    }
  }
  return offset == data.size();
}

bool XhciController::controlTransfer(uint8_t slot) {
  EndpointState& endpoint = s().slots[slot].endpoints[1];
  std::vector<RingTrb> td;
  RingPosition after{};
  // A TD the driver turned into No-Ops (Linux does, for a cancelled one)
  // ends at its first TRB without CHAIN, not at a Status Stage it no
  // longer has.
  std::optional<Trb> first = fetch(endpoint.dequeue);
  bool startsWithSetup =
      first && (first->control & TRB_CYCLE) == endpoint.cycle && trbType(*first) == SETUP_STAGE;
  if (first && (first->control & TRB_CYCLE) == endpoint.cycle && trbType(*first) == NO_OP) {
    if (!gatherTd(endpoint, td, false, after)) return false;
    if (eventRoom() < td.size() + 1) return false;
    deliverIn(td, 0, td.size(), {}, slot, 1);
    endpoint.dequeue = after.dequeue;
    endpoint.cycle = after.cycle;
    return true;
  }
  if (!gatherTd(endpoint, td, startsWithSetup, after)) return false;
  if (eventRoom() < td.size() + 1) return false;  // Waits for the driver to free events.
  const Trb& setupTrb = td.front().trb;
  if (trbType(setupTrb) != SETUP_STAGE || !(setupTrb.control & TRB_IDT) || trbTransferLength(setupTrb) != 8) {
    transferEvent(td.front().address, 0, TRB_ERROR, slot, 1);
    endpoint.dequeue = after.dequeue;
    endpoint.cycle = after.cycle;
    return true;
  }
  uint8_t raw[8];
  std::memcpy(raw, &setupTrb.parameter, 8);
  SetupPacket setup{raw[0], raw[1], static_cast<uint16_t>(raw[2] | raw[3] << 8),
                    static_cast<uint16_t>(raw[4] | raw[5] << 8), static_cast<uint16_t>(raw[6] | raw[7] << 8)};
  bool in = setup.requestType & 0x80;
  size_t dataEnd = td.size() - 1;  // The Status Stage is last.

  // OUT data, from the driver's buffers (or the TRB itself with IDT).
  std::vector<uint8_t> out;
  if (!in) {
    for (size_t i = 1; i < dataEnd; ++i) {
      const Trb& trb = td[i].trb;
      if (trbType(trb) != DATA_STAGE && trbType(trb) != NORMAL) continue;
      uint32_t length = std::min<uint32_t>(trbTransferLength(trb), MAX_CONTROL_DATA - uint32_t(out.size()));
      const uint8_t* from = (trb.control & TRB_IDT) ? reinterpret_cast<const uint8_t*>(&td[i].trb.parameter)
                                                    : memory_.translate(trb.parameter, length);
      if ((trb.control & TRB_IDT) && length > 8) from = nullptr;
      if (from == nullptr && length > 0) {
        transferEvent(td[i].address, length, TRB_ERROR, slot, 1);
        endpoint.dequeue = after.dequeue;
        endpoint.cycle = after.cycle;
        return true;
      }
      out.insert(out.end(), from, from + length);
    }
  }

  std::optional<std::vector<uint8_t>> reply;
  if (tabletSlot(slot)) reply = UsbTablet::control(s().tablet, setup, out);
  if (!reply) {
    // STALL (or nobody there): reported on the data stage when there is
    // one; the endpoint halts with its dequeue on this TD until the driver
    // resets it and moves past.
    size_t where = dataEnd > 1 ? 1 : dataEnd;
    transferEvent(td[where].address, trbTransferLength(td[where].trb),
                  tabletSlot(slot) ? STALL : USB_TRANSACTION_ERROR, slot, 1);
    halt(slot, 1);
    return true;
  }
  if (in) {
    // A reply is cut to wLength; TRBs holding less than the driver asked
    // for get what fits.
    deliverIn(td, 1, dataEnd, *reply, slot, 1);
  } else {
    for (size_t i = 1; i < dataEnd; ++i) {
      if ((td[i].trb.control & TRB_IOC) && trbType(td[i].trb) != EVENT_DATA)
        transferEvent(td[i].address, 0, SUCCESS, slot, 1);
    }
  }
  if (td.back().trb.control & TRB_IOC) transferEvent(td.back().address, 0, SUCCESS, slot, 1);
  endpoint.dequeue = after.dequeue;
  endpoint.cycle = after.cycle;
  return true;
}

bool XhciController::interruptTransfer(uint8_t slot, uint8_t dci) {
  EndpointState& endpoint = s().slots[slot].endpoints[dci];
  std::vector<RingTrb> td;
  RingPosition after{};
  if (!gatherTd(endpoint, td, false, after)) return false;
  if (eventRoom() < td.size() + 1) return false;
  TabletState& tablet = s().tablet;
  bool ours = tabletSlot(slot) && dci == UsbTablet::INTERRUPT_DCI && endpoint.type == EP_INTERRUPT_IN;
  if (!ours || tablet.configuration == 0 || tablet.inHalted) {
    // An endpoint the device does not have, or one it halted: the TD fails.
    transferEvent(td.front().address, trbTransferLength(td.front().trb), ours ? STALL : USB_TRANSACTION_ERROR,
                  slot, dci);
    halt(slot, dci);
    return true;
  }
  // A TD of No-Ops (a cancelled transfer the driver cleared) completes at
  // once and takes no report.
  bool carriesData = false;
  for (const RingTrb& trb : td) carriesData |= trbType(trb.trb) == NORMAL;
  if (!carriesData) {
    deliverIn(td, 0, td.size(), {}, slot, dci);
    endpoint.dequeue = after.dequeue;
    endpoint.cycle = after.cycle;
    return true;
  }
  // The TD waits here until there is something to report.
  if (!UsbTablet::reportWaiting(tablet)) return false;
  auto report = UsbTablet::encode(UsbTablet::takeReport(tablet));
  if (!deliverIn(td, 0, td.size(), report, slot, dci)) {
    transferEvent(td.back().address, 0, BABBLE, slot, dci);
    halt(slot, dci);
    return true;
  }
  endpoint.dequeue = after.dequeue;
  endpoint.cycle = after.cycle;
  return true;
}

}  // namespace cellvisor
