/* A minimal NVMe driver for the test guest: the controller found by its
 * class (01:08:02), enabled with an admin queue, one I/O queue pair,
 * polling by phase tag (no interrupts), a pattern written and read back. */
#include "platform.h"

#define ENTRIES 16
#define DOORBELLS 0x1000

struct nvme_command {
  uint8_t opcode;
  uint8_t flags;
  uint16_t cid;
  uint32_t nsid;
  uint64_t reserved;
  uint64_t metadata;
  uint64_t prp1;
  uint64_t prp2;
  uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

struct nvme_completion {
  uint32_t dw0;
  uint32_t dw1;
  uint16_t sq_head;
  uint16_t sq_id;
  uint16_t cid;
  uint16_t status;
};

struct nvme_queue {
  struct nvme_command* sq;
  volatile struct nvme_completion* cq;
  uint16_t id;
  uint16_t tail;
  uint16_t head;
  uint8_t phase;
};

static struct nvme_command admin_sq[ENTRIES] __attribute__((aligned(4096)));
static struct nvme_completion admin_cq[ENTRIES] __attribute__((aligned(4096)));
static struct nvme_command io_sq[ENTRIES] __attribute__((aligned(4096)));
static struct nvme_completion io_cq[ENTRIES] __attribute__((aligned(4096)));
static uint8_t identify[4096] __attribute__((aligned(4096)));
static uint8_t data[4096] __attribute__((aligned(4096)));

struct nvme_controller {
  uint64_t bar;
  unsigned slot;
  uint16_t cid;
  struct nvme_queue admin;
  struct nvme_queue io;
};

static bool nvme_find(struct nvme_controller* nvme) {
  for (unsigned slot = 0; slot < 32; ++slot) {
    if (pci_cf8_read(0, slot, 0, 0) == 0xffffffffu) continue;
    if ((pci_cf8_read(0, slot, 0, 8) >> 8) != 0x010802) continue;
    nvme->slot = slot;
    nvme->bar = (pci_cf8_read(0, slot, 0, 0x10) & ~0xfull) | (uint64_t)pci_cf8_read(0, slot, 0, 0x14) << 32;
    return true;
  }
  return false;
}

static bool wait_ready(uint64_t bar, uint32_t ready) {
  for (unsigned waited = 0; waited < 200000; ++waited) {
    uint32_t csts = mmio_read32(bar + 0x1c);
    if (csts & 2) return false; /* Controller fatal status. */
    if ((csts & 1) == ready) return true;
    cpu_relax();
  }
  return false;
}

/* Submits one command and polls for its completion: the status field, or
 * 0xffff when none came. */
static uint16_t nvme_run(struct nvme_controller* nvme, struct nvme_queue* q, struct nvme_command* command) {
  command->cid = ++nvme->cid;
  q->sq[q->tail] = *command;
  q->tail = (uint16_t)((q->tail + 1) % ENTRIES);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  mmio_write32(nvme->bar + DOORBELLS + 8u * q->id, q->tail);
  for (unsigned waited = 0; waited < 4000000; ++waited) {
    uint16_t status = __atomic_load_n(&q->cq[q->head].status, __ATOMIC_ACQUIRE);
    if ((status & 1) != q->phase) {
      cpu_relax();
      continue;
    }
    uint16_t cid = q->cq[q->head].cid;
    if (++q->head == ENTRIES) {
      q->head = 0;
      q->phase ^= 1;
    }
    mmio_write32(nvme->bar + DOORBELLS + 8u * q->id + 4, q->head);
    if (cid != command->cid) return 0xfffe; /* Another command's completion: never expected here. */
    return (uint16_t)(status >> 1) & 0x7ff;
  }
  return 0xffff;
}

static bool nvme_setup(struct nvme_controller* nvme) {
  uint64_t bar = nvme->bar;
  mmio_write32(bar + 0x14, 0);
  if (!wait_ready(bar, 0)) return false;
  memset(admin_cq, 0, sizeof(admin_cq));
  memset(io_cq, 0, sizeof(io_cq));
  nvme->admin = (struct nvme_queue){admin_sq, admin_cq, 0, 0, 0, 1};
  nvme->io = (struct nvme_queue){io_sq, io_cq, 1, 0, 0, 1};
  mmio_write32(bar + 0x24, (ENTRIES - 1) << 16 | (ENTRIES - 1));
  mmio_write32(bar + 0x28, (uint32_t)(uint64_t)admin_sq);
  mmio_write32(bar + 0x2c, 0);
  mmio_write32(bar + 0x30, (uint32_t)(uint64_t)admin_cq);
  mmio_write32(bar + 0x34, 0);
  mmio_write32(bar + 0x14, 1 | 6u << 16 | 4u << 20); /* EN, 64-byte SQEs, 16-byte CQEs. */
  if (!wait_ready(bar, 1)) return false;
  struct nvme_command command = {.opcode = 0x09, .cdw10 = 0x07, .cdw11 = 0}; /* One queue pair. */
  if (nvme_run(nvme, &nvme->admin, &command) != 0) return false;
  command = (struct nvme_command){.opcode = 0x05,
                                  .prp1 = (uint64_t)io_cq,
                                  .cdw10 = (ENTRIES - 1) << 16 | 1,
                                  .cdw11 = 1}; /* Contiguous, no interrupts. */
  if (nvme_run(nvme, &nvme->admin, &command) != 0) return false;
  command = (struct nvme_command){
      .opcode = 0x01, .prp1 = (uint64_t)io_sq, .cdw10 = (ENTRIES - 1) << 16 | 1, .cdw11 = 1u << 16 | 1};
  return nvme_run(nvme, &nvme->admin, &command) == 0;
}

static uint16_t nvme_io(struct nvme_controller* nvme, uint8_t opcode, uint64_t lba) {
  struct nvme_command command = {.opcode = opcode,
                                 .nsid = 1,
                                 .prp1 = (uint64_t)data,
                                 .cdw10 = (uint32_t)lba,
                                 .cdw11 = (uint32_t)(lba >> 32),
                                 .cdw12 = 7}; /* 8 sectors: one page. */
  return nvme_run(nvme, &nvme->io, &command);
}

void test_nvme(void) {
  struct nvme_controller nvme = {0};
  check("nvme: controller found by its class", nvme_find(&nvme));
  if (!nvme.bar) return;
  printf("nvme: 00:%02x.0 BAR0 at %lx, CAP %x\n", nvme.slot, nvme.bar, mmio_read32(nvme.bar));
  check("nvme: enabled with admin and I/O queues", nvme_setup(&nvme));
  struct nvme_command command = {.opcode = 0x06, .prp1 = (uint64_t)identify, .cdw10 = 1};
  check("nvme: identify controller", nvme_run(&nvme, &nvme.admin, &command) == 0);
  check("nvme: one namespace", *(uint32_t*)(identify + 516) == 1);
  command = (struct nvme_command){.opcode = 0x06, .nsid = 1, .prp1 = (uint64_t)identify, .cdw10 = 0};
  check("nvme: identify namespace", nvme_run(&nvme, &nvme.admin, &command) == 0);
  uint64_t blocks = *(uint64_t*)identify;
  printf("nvme: namespace 1: %lu blocks of %u bytes\n", blocks, 1u << identify[130]);
  check("nvme: 512-byte blocks", identify[130] == 9 && blocks >= 64);
  bool written = true;
  bool verified = true;
  for (uint64_t lba = 0; lba < 64; lba += 8) {
    for (unsigned i = 0; i < sizeof(data); ++i) data[i] = (uint8_t)(i * 37 + lba);
    written &= nvme_io(&nvme, 0x01, lba) == 0;
  }
  for (uint64_t lba = 0; lba < 64; lba += 8) {
    memset(data, 0, sizeof(data));
    if (nvme_io(&nvme, 0x02, lba) != 0) {
      verified = false;
      continue;
    }
    for (unsigned i = 0; i < sizeof(data); ++i) verified &= data[i] == (uint8_t)(i * 37 + lba);
  }
  check("nvme: pattern written", written);
  check("nvme: pattern read back intact", verified);
  check("nvme: past-the-end read fails with LBA out of range", nvme_io(&nvme, 0x02, blocks) == 0x80);
  command = (struct nvme_command){.opcode = 0x00, .nsid = 1};
  check("nvme: flush", nvme_run(&nvme, &nvme.io, &command) == 0);
  check("nvme: controller healthy", (mmio_read32(nvme.bar + 0x1c) & 3) == 1);
}

/* Write-then-verify rounds over the first 128 KiB while the host kills and
 * restarts the NVMe server; the guest must not notice. */
void test_nvme_stress(unsigned rounds) {
  struct nvme_controller nvme = {0};
  if (!nvme_find(&nvme) || !nvme_setup(&nvme)) {
    check("nvme stress: controller set up", false);
    return;
  }
  unsigned io_errors = 0;
  unsigned bad_blocks = 0;
  for (unsigned round = 0; round < rounds; ++round) {
    for (uint64_t lba = 0; lba < 256; lba += 8) {
      for (unsigned i = 0; i < sizeof(data); i += 8) *(uint64_t*)(data + i) = (round << 24) ^ (lba << 12) ^ i;
      if (nvme_io(&nvme, 0x01, lba) != 0) ++io_errors;
    }
    for (uint64_t lba = 0; lba < 256; lba += 8) {
      memset(data, 0, sizeof(data));
      if (nvme_io(&nvme, 0x02, lba) != 0) {
        ++io_errors;
        continue;
      }
      for (unsigned i = 0; i < sizeof(data); i += 8) {
        if (*(uint64_t*)(data + i) != ((round << 24) ^ (lba << 12) ^ i)) {
          ++bad_blocks;
          break;
        }
      }
    }
    printf("stress: round %u done, %u I/O errors, %u bad blocks\n", round + 1, io_errors, bad_blocks);
  }
  check("nvme stress: no I/O errors", io_errors == 0);
  check("nvme stress: every block verified", bad_blocks == 0);
  check("nvme stress: controller healthy", (mmio_read32(nvme.bar + 0x1c) & 3) == 1);
}
