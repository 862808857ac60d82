// What a virtio device server keeps in its state segment's body: everything
// the guest has programmed (PCI config, features, queues, MSI-X) and where
// each queue stands, including requests taken from the ring but not yet
// completed. The layout is versioned; a server refuses a segment it does not
// understand.
#pragma once

#include <cstdint>

#include "pci/msix.h"
#include "servers/runtime/virtqueue.h"

namespace cellvisor {

constexpr uint32_t VIRTIO_STATE_MAGIC = 0x43565354;  // "CVST"
constexpr uint32_t VIRTIO_STATE_LAYOUT_VERSION = 5;
constexpr uint16_t MAX_QUEUES = 64;
constexpr uint16_t MAX_QUEUE_SIZE = 1024;
constexpr uint16_t MAX_VECTORS = MAX_QUEUES + 1;

struct QueueState {
  uint16_t size;
  uint16_t enabled;
  uint16_t msixVector;
  uint16_t reserved;
  uint64_t descriptors;
  uint64_t driverArea;
  uint64_t deviceArea;
  VirtqueuePosition position;
  // In-flight tracking (as vhost-user does): a head taken from the avail ring
  // has a non-zero sequence number until it is completed.
  uint64_t nextSequence;
  uint64_t inflight[MAX_QUEUE_SIZE];
  // A completion being published: if the server dies half-way, the next one
  // finishes it (or sees that it was finished) instead of losing or
  // repeating it.
  struct {
    uint16_t active;
    uint16_t head;
    uint16_t usedBefore;
    uint16_t reserved;
    uint32_t length;
    uint32_t reserved2;
  } completing;
};

struct VirtioState {
  uint8_t pciConfig[256];
  uint32_t deviceFeatureSelect;
  uint32_t driverFeatureSelect;
  uint64_t driverFeatures;
  uint16_t configVector;
  uint16_t queueSelect;
  uint8_t status;
  uint8_t configGeneration;
  uint8_t isr;
  uint8_t reserved;
  uint16_t msixControl;
  uint16_t reserved2;
  uint32_t pciCfgWindow[4];  // VIRTIO_PCI_CAP_PCI_CFG: bar, offset, length, data.
  pci::MsixEntry msix[MAX_VECTORS];
  uint64_t msixPending[(MAX_VECTORS + 63) / 64];
  QueueState queues[MAX_QUEUES];
  uint8_t deviceSpecific[4096];  // e.g. a block device's writeback setting.
};

}  // namespace cellvisor
