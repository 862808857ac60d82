// The parts of the xHCI 1.2 specification this controller implements:
// register layout and bits, TRB formats, completion codes and the 32-byte
// device context layout (section numbers in comments).
#pragma once

#include <cstdint>

namespace cellvisor::xhci {

// PCI identity: the ID xHCI drivers know for a generic, spec-only
// controller (no vendor quirks), class 0C/03/30.
constexpr uint16_t VENDOR = 0x1b36;
constexpr uint16_t DEVICE = 0x000d;

// BAR0 layout (ours).
constexpr uint64_t BAR0_SIZE = 0x4000;
constexpr uint64_t CAP_LENGTH = 0x40;       // Operational registers follow.
constexpr uint64_t EXTENDED_CAPS = 0x20;    // Supported Protocol capabilities.
constexpr uint64_t PORT_REGISTERS = 0x400;  // From the operational base (5.4.8).
constexpr uint64_t RUNTIME_BASE = 0x1000;   // RTSOFF.
constexpr uint64_t DOORBELL_BASE = 0x2000;  // DBOFF.
constexpr uint64_t MSIX_TABLE = 0x3000;
constexpr uint64_t MSIX_PBA = 0x3800;

constexpr uint8_t MAX_SLOTS = 8;
constexpr uint8_t USB2_PORTS = 4;  // Ports 1-4: USB 2.0 (the tablet is on port 1).
constexpr uint8_t USB3_PORTS = 4;  // Ports 5-8: USB 3.x, nothing attached.
constexpr uint8_t PORTS = USB2_PORTS + USB3_PORTS;
constexpr uint8_t ENDPOINTS = 32;  // Device context indices 1-31 (0: the slot context).

// Capability registers (5.3).
constexpr uint64_t HCIVERSION = 0x02;
constexpr uint64_t HCSPARAMS1 = 0x04;
constexpr uint64_t HCSPARAMS2 = 0x08;
constexpr uint64_t HCSPARAMS3 = 0x0c;
constexpr uint64_t HCCPARAMS1 = 0x10;
constexpr uint64_t DBOFF = 0x14;
constexpr uint64_t RTSOFF = 0x18;
constexpr uint64_t HCCPARAMS2 = 0x1c;
constexpr uint32_t HCC_AC64 = 1u << 0;

// Operational registers, from CAP_LENGTH (5.4).
constexpr uint64_t USBCMD = 0x00;
constexpr uint64_t USBSTS = 0x04;
constexpr uint64_t PAGESIZE = 0x08;
constexpr uint64_t DNCTRL = 0x14;
constexpr uint64_t CRCR = 0x18;
constexpr uint64_t DCBAAP = 0x30;
constexpr uint64_t CONFIG = 0x38;

constexpr uint32_t CMD_RUN = 1u << 0;
constexpr uint32_t CMD_HCRST = 1u << 1;
constexpr uint32_t CMD_INTE = 1u << 2;
constexpr uint32_t CMD_HSEE = 1u << 3;
constexpr uint32_t CMD_LHCRST = 1u << 7;
constexpr uint32_t CMD_CSS = 1u << 8;
constexpr uint32_t CMD_CRS = 1u << 9;
constexpr uint32_t CMD_EWE = 1u << 10;
constexpr uint32_t CMD_WRITABLE = CMD_RUN | CMD_INTE | CMD_HSEE | CMD_EWE | (1u << 11) | (1u << 13);

constexpr uint32_t STS_HCH = 1u << 0;
constexpr uint32_t STS_HSE = 1u << 2;
constexpr uint32_t STS_EINT = 1u << 3;
constexpr uint32_t STS_PCD = 1u << 4;
constexpr uint32_t STS_SRE = 1u << 10;
constexpr uint32_t STS_CNR = 1u << 11;
constexpr uint32_t STS_WRITE_CLEAR = STS_HSE | STS_EINT | STS_PCD | STS_SRE;

constexpr uint64_t CRCR_RCS = 1u << 0;
constexpr uint64_t CRCR_CS = 1u << 1;
constexpr uint64_t CRCR_CA = 1u << 2;
constexpr uint64_t CRCR_CRR = 1u << 3;

// Port register set (5.4.8): PORTSC and its bits.
constexpr uint32_t PORT_CCS = 1u << 0;
constexpr uint32_t PORT_PED = 1u << 1;
constexpr uint32_t PORT_OCA = 1u << 3;
constexpr uint32_t PORT_PR = 1u << 4;
constexpr uint32_t PORT_PLS_SHIFT = 5;
constexpr uint32_t PORT_PLS_MASK = 0xfu << PORT_PLS_SHIFT;
constexpr uint32_t PORT_PP = 1u << 9;
constexpr uint32_t PORT_SPEED_SHIFT = 10;
constexpr uint32_t PORT_PIC_MASK = 3u << 14;
constexpr uint32_t PORT_LWS = 1u << 16;
constexpr uint32_t PORT_CSC = 1u << 17;
constexpr uint32_t PORT_PEC = 1u << 18;
constexpr uint32_t PORT_WRC = 1u << 19;
constexpr uint32_t PORT_OCC = 1u << 20;
constexpr uint32_t PORT_PRC = 1u << 21;
constexpr uint32_t PORT_PLC = 1u << 22;
constexpr uint32_t PORT_CEC = 1u << 23;
constexpr uint32_t PORT_WAKE_MASK = 7u << 25;  // WCE, WDE, WOE.
constexpr uint32_t PORT_WPR = 1u << 31;
constexpr uint32_t PORT_CHANGES = PORT_CSC | PORT_PEC | PORT_WRC | PORT_OCC | PORT_PRC | PORT_PLC | PORT_CEC;

// Port link states (PLS).
constexpr uint32_t LINK_U0 = 0;
constexpr uint32_t LINK_U3 = 3;
constexpr uint32_t LINK_DISABLED = 4;
constexpr uint32_t LINK_RX_DETECT = 5;
constexpr uint32_t LINK_POLLING = 7;
constexpr uint32_t LINK_RESUME = 15;

// Protocol speed IDs (default PSI, 7.2.2.1.1).
constexpr uint32_t SPEED_FULL = 1;
constexpr uint32_t SPEED_HIGH = 3;

// Runtime registers, from RUNTIME_BASE (5.5): MFINDEX, then interrupter 0.
constexpr uint64_t MFINDEX = 0x00;
constexpr uint64_t INTERRUPTER0 = 0x20;
constexpr uint64_t IMAN = 0x00;
constexpr uint64_t IMOD = 0x04;
constexpr uint64_t ERSTSZ = 0x08;
constexpr uint64_t ERSTBA = 0x10;
constexpr uint64_t ERDP = 0x18;
constexpr uint32_t IMAN_IP = 1u << 0;
constexpr uint32_t IMAN_IE = 1u << 1;
constexpr uint64_t ERDP_EHB = 1u << 3;

// Transfer Request Blocks (6.4).
struct Trb {
  uint64_t parameter;
  uint32_t status;
  uint32_t control;
};
static_assert(sizeof(Trb) == 16);

constexpr uint32_t TRB_CYCLE = 1u << 0;
constexpr uint32_t TRB_TOGGLE_CYCLE = 1u << 1;     // Link TRBs.
constexpr uint32_t TRB_EVENT_DATA_FLAG = 1u << 2;  // Transfer events: ED.
constexpr uint32_t TRB_ISP = 1u << 2;
constexpr uint32_t TRB_CHAIN = 1u << 4;
constexpr uint32_t TRB_IOC = 1u << 5;
constexpr uint32_t TRB_IDT = 1u << 6;
constexpr uint32_t TRB_BSR = 1u << 9;  // Address Device: block SET_ADDRESS.
constexpr uint32_t TRB_DC = 1u << 9;   // Configure Endpoint: deconfigure.
constexpr uint32_t TRB_DIR_IN = 1u << 16;

constexpr uint32_t trbType(const Trb& trb) {
  return (trb.control >> 10) & 0x3f;
}
constexpr uint32_t trbSlot(const Trb& trb) {
  return trb.control >> 24;
}
constexpr uint32_t trbEndpoint(const Trb& trb) {
  return (trb.control >> 16) & 0x1f;
}
constexpr uint32_t trbTransferLength(const Trb& trb) {
  return trb.status & 0x1ffff;
}

enum TrbType : uint32_t {
  NORMAL = 1,
  SETUP_STAGE = 2,
  DATA_STAGE = 3,
  STATUS_STAGE = 4,
  ISOCH = 5,
  LINK = 6,
  EVENT_DATA = 7,
  NO_OP = 8,
  ENABLE_SLOT = 9,
  DISABLE_SLOT = 10,
  ADDRESS_DEVICE = 11,
  CONFIGURE_ENDPOINT = 12,
  EVALUATE_CONTEXT = 13,
  RESET_ENDPOINT = 14,
  STOP_ENDPOINT = 15,
  SET_TR_DEQUEUE = 16,
  RESET_DEVICE = 17,
  NO_OP_COMMAND = 23,
  TRANSFER_EVENT = 32,
  COMMAND_COMPLETION = 33,
  PORT_STATUS_CHANGE = 34,
};

// Completion codes (6.4.5).
enum Completion : uint32_t {
  SUCCESS = 1,
  BABBLE = 3,
  USB_TRANSACTION_ERROR = 4,
  TRB_ERROR = 5,
  STALL = 6,
  NO_SLOTS = 9,
  SLOT_NOT_ENABLED = 11,
  ENDPOINT_NOT_ENABLED = 12,
  SHORT_PACKET = 13,
  PARAMETER_ERROR = 17,
  CONTEXT_STATE_ERROR = 19,
  COMMAND_RING_STOPPED = 24,
  COMMAND_ABORTED = 25,
  STOPPED = 26,
};

// Contexts, 32 bytes each (HCCPARAMS1.CSZ = 0) (6.2).
constexpr uint64_t CONTEXT_BYTES = 32;
// Slot context: dword 0 bits 27-31 Context Entries, dword 1 bits 16-23 the
// root hub port, dword 3 bits 0-7 the USB address and 27-31 the slot state.
enum SlotContextState : uint32_t {
  SLOT_DISABLED = 0,
  SLOT_DEFAULT = 1,
  SLOT_ADDRESSED = 2,
  SLOT_CONFIGURED = 3
};
// Endpoint context: dword 0 bits 0-2 the state; dword 1 bits 3-5 the type,
// 16-31 Max Packet Size; dwords 2-3 the TR Dequeue Pointer with DCS in bit 0.
enum EndpointContextState : uint8_t {
  EP_DISABLED = 0,
  EP_RUNNING = 1,
  EP_HALTED = 2,
  EP_STOPPED = 3,
  EP_ERROR = 4
};
enum EndpointType : uint8_t { EP_CONTROL = 4, EP_INTERRUPT_IN = 7 };

// Extended capability IDs (7).
constexpr uint32_t CAP_SUPPORTED_PROTOCOL = 2;

}  // namespace cellvisor::xhci
