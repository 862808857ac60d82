// What an NVMe server keeps in its state segment's body: everything the
// driver programmed (PCI config, MSI-X, controller registers, queues,
// features) and every command taken from a submission queue but not yet
// completed, so a restarted server re-executes the idempotent ones and
// completes each command exactly once.
#pragma once

#include <cstdint>

#include "pci/msix.h"
#include "servers/nvme/nvme-spec.h"

namespace cellvisor::nvme {

constexpr uint32_t STATE_MAGIC = 0x43564e56;  // "CVNV"
constexpr uint32_t STATE_LAYOUT_VERSION = 1;
constexpr uint16_t MAX_IO_QUEUES = 64;
constexpr uint16_t MAX_QUEUES = MAX_IO_QUEUES + 1;  // Queue 0 is the admin queue.
constexpr uint16_t MAX_VECTORS = MAX_QUEUES;
constexpr uint32_t MAX_SLOTS = 1024;  // Commands in flight at once, all queues.
constexpr uint32_t MAX_ASYNC_EVENTS = 4;

struct SubmissionQueue {
  uint64_t base;
  uint16_t size;  // Entries; 0: the queue does not exist.
  uint16_t head;  // Next entry to take.
  uint16_t tail;  // As the driver last rang it.
  uint16_t cqid;
};

struct CompletionQueue {
  uint64_t base;
  uint16_t size;
  uint16_t head;  // As the driver last rang it.
  uint16_t tail;  // Next entry to fill.
  uint16_t vector;
  uint8_t phase;  // Phase tag of the entries being filled now.
  uint8_t interruptsEnabled;
  uint16_t reserved;
};

// A command taken from a submission queue and not yet completed.
struct Slot {
  enum State : uint8_t { FREE = 0, RUNNING = 1, DONE = 2 };
  uint8_t state;
  uint8_t reserved;
  uint16_t sqid;
  uint16_t status;  // DONE: what it completes with.
  uint16_t sqHead;  // The submission queue's head after it was taken.
  uint32_t result;  // DONE: completion dword 0.
  uint32_t reserved2;
  uint64_t sequence;  // Order taken: completions wait for room in this order.
  Command command;    // Copied out of guest memory when taken.
};

struct NvmeState {
  uint8_t pciConfig[256];
  pci::MsixEntry msix[MAX_VECTORS];
  uint64_t msixPending[(MAX_VECTORS + 63) / 64];
  uint32_t cc;
  uint32_t csts;
  uint32_t aqa;
  uint32_t intms;
  uint64_t asq;
  uint64_t acq;
  SubmissionQueue sq[MAX_QUEUES];
  CompletionQueue cq[MAX_QUEUES];
  // Features (Set/Get Features), current values.
  uint32_t arbitration;
  uint32_t powerManagement;
  uint32_t temperatureThreshold;
  uint32_t errorRecovery;
  uint32_t volatileWriteCache;
  uint32_t queuesGranted;  // Number of Queues result (0-based NCQA << 16 | NSQA); 0xffffffff: not set yet.
  uint32_t interruptCoalescing;
  uint32_t writeAtomicity;
  uint32_t asyncEventConfig;
  uint32_t interruptVectorConfig[MAX_VECTORS];
  // Asynchronous Event Requests waiting for an event.
  uint16_t asyncEventCids[MAX_ASYNC_EVENTS];
  uint32_t asyncEventCount;
  // Shadow doorbells (Doorbell Buffer Config): 0 when off.
  uint64_t shadowDoorbells;
  uint64_t eventIndexes;
  // SMART / health counters.
  uint64_t dataUnitsRead;  // Thousands of 512-byte units, rounded up.
  uint64_t dataUnitsWritten;
  uint64_t hostReads;
  uint64_t hostWrites;
  uint64_t bytesReadRemainder;
  uint64_t bytesWrittenRemainder;
  uint64_t errorCount;
  uint64_t nextSequence;
  // A completion being published: if the server dies half-way, the next
  // one writes the same entry again (harmless: same bytes, same phase) and
  // finishes the bookkeeping, instead of running the command a second time.
  struct {
    uint32_t active;
    uint32_t slot;
    uint16_t cqid;
    uint16_t cqTail;
    uint32_t reserved;
    Completion entry;
  } completing;
  Slot slots[MAX_SLOTS];
};

}  // namespace cellvisor::nvme
