/* A minimal virtio-net driver for the test guest: a receive and a transmit
 * queue, polling. It resolves its peer with ARP and pings it: frames go
 * through the device server, the tap and the host's bridge and back. */
#include "platform.h"

#define QUEUE_SIZE 16
#define BUFFER_SIZE 2048
#define HEADER 12 /* struct virtio_net_hdr */
#define F_MAC (1u << 5)
#define F_STATUS (1u << 16)

static struct descriptor rx_descriptors[QUEUE_SIZE] __attribute__((aligned(4096)));
static uint16_t rx_avail[3 + QUEUE_SIZE] __attribute__((aligned(4096)));
static uint8_t rx_used[6 + 8 * QUEUE_SIZE] __attribute__((aligned(4096)));
static struct descriptor tx_descriptors[QUEUE_SIZE] __attribute__((aligned(4096)));
static uint16_t tx_avail[3 + QUEUE_SIZE] __attribute__((aligned(4096)));
static uint8_t tx_used[6 + 8 * QUEUE_SIZE] __attribute__((aligned(4096)));
static uint8_t rx_buffers[QUEUE_SIZE][BUFFER_SIZE] __attribute__((aligned(4096)));
static uint8_t tx_buffer[HEADER + 128] __attribute__((aligned(64)));

static struct virtio_device dev;
static uint16_t rx_avail_idx, rx_last_used, tx_avail_idx, tx_last_used;
static uint8_t mac[6];
static uint8_t our_ip[4];

static bool parse_ip(const char* text, uint8_t out[4]) {
  for (int part = 0; part < 4; ++part) {
    unsigned value = 0, digits = 0;
    while (*text >= '0' && *text <= '9' && digits < 3)
      value = value * 10 + (unsigned)(*text++ - '0'), ++digits;
    if (digits == 0 || value > 255 || (part < 3 && *text++ != '.')) return false;
    out[part] = (uint8_t)value;
  }
  return *text == 0;
}

static void put16(uint8_t* at, uint16_t value) {
  at[0] = (uint8_t)(value >> 8), at[1] = (uint8_t)value;
}
static uint16_t get16(const uint8_t* at) {
  return (uint16_t)(at[0] << 8 | at[1]);
}

static uint16_t checksum(const uint8_t* data, size_t length) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < length; i += 2) sum += get16(data + i);
  if (length & 1) sum += (uint32_t)data[length - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static void give_rx_buffer(uint16_t index) {
  rx_descriptors[index] = (struct descriptor){(uint64_t)rx_buffers[index], BUFFER_SIZE, 2, 0};
  rx_avail[2 + rx_avail_idx % QUEUE_SIZE] = index;
  __atomic_store_n(&rx_avail[1], (uint16_t)(rx_avail_idx + 1), __ATOMIC_RELEASE);
  ++rx_avail_idx;
}

/* Sends one frame (Ethernet header included); true once the device took it. */
static bool send(const uint8_t* frame, size_t length) {
  memset(tx_buffer, 0, HEADER);
  memcpy(tx_buffer + HEADER, frame, length);
  tx_descriptors[0] = (struct descriptor){(uint64_t)tx_buffer, (uint32_t)(HEADER + length), 0, 0};
  tx_avail[2 + tx_avail_idx % QUEUE_SIZE] = 0;
  __atomic_store_n(&tx_avail[1], (uint16_t)(tx_avail_idx + 1), __ATOMIC_RELEASE);
  ++tx_avail_idx;
  virtio_notify(&dev, 1);
  for (unsigned waited = 0; waited < 2000000; ++waited) {
    if (__atomic_load_n((volatile uint16_t*)(tx_used + 2), __ATOMIC_ACQUIRE) != tx_last_used) {
      ++tx_last_used;
      return true;
    }
    cpu_relax();
  }
  return false;
}

static bool send(const uint8_t* frame, size_t length);

/* The host asks again who we are once its neighbour entry goes stale (after
 * some 30 s of pinging): answer, or its echo replies stop coming. */
static void answer_arp_request(const uint8_t* frame, uint32_t length) {
  if (length < 42 || get16(frame + 12) != 0x0806 || get16(frame + 20) != 1) return;
  if (memcmp(frame + 38, our_ip, 4) != 0) return;
  uint8_t reply[42];
  memcpy(reply, frame + 6, 6); /* to the asker */
  memcpy(reply + 6, mac, 6);
  memcpy(reply + 12, frame + 12, 8); /* type, hardware and protocol, sizes */
  put16(reply + 20, 2);              /* reply */
  memcpy(reply + 22, mac, 6);
  memcpy(reply + 28, our_ip, 4);
  memcpy(reply + 32, frame + 22, 10); /* the asker's MAC and IP */
  send(reply, sizeof(reply));
}

/* Waits up to `ms` for a frame that `match` accepts; every frame seen is
 * handed back to the device. */
static bool receive(bool (*match)(const uint8_t* frame, uint32_t length, void* context), void* context,
                    unsigned ms) {
  uint32_t start = pm_timer_ticks();
  while ((uint32_t)(pm_timer_ticks() - start) < ms * 3580u) {
    uint16_t used_idx = __atomic_load_n((volatile uint16_t*)(rx_used + 2), __ATOMIC_ACQUIRE);
    while (rx_last_used != used_idx) {
      const uint8_t* element = rx_used + 4 + 8 * (rx_last_used % QUEUE_SIZE);
      uint32_t id = *(const uint32_t*)element;
      uint32_t length = *(const uint32_t*)(element + 4);
      ++rx_last_used;
      if (id < QUEUE_SIZE && length > HEADER) answer_arp_request(rx_buffers[id] + HEADER, length - HEADER);
      bool found =
          id < QUEUE_SIZE && length > HEADER && match(rx_buffers[id] + HEADER, length - HEADER, context);
      give_rx_buffer((uint16_t)(id % QUEUE_SIZE));
      virtio_notify(&dev, 0);
      if (found) return true;
    }
    cpu_relax();
  }
  return false;
}

struct arp_wait {
  const uint8_t* ip;
  const uint8_t* peer;
  uint8_t peer_mac[6];
};

static bool is_arp_reply(const uint8_t* frame, uint32_t length, void* context) {
  struct arp_wait* wait = context;
  if (length < 42 || get16(frame + 12) != 0x0806 || get16(frame + 20) != 2) return false;
  if (memcmp(frame + 28, wait->peer, 4) != 0 || memcmp(frame + 38, wait->ip, 4) != 0) return false;
  memcpy(wait->peer_mac, frame + 22, 6);
  return true;
}

static bool is_echo_reply(const uint8_t* frame, uint32_t length, void* context) {
  const uint8_t* peer = context;
  if (length < 42 || get16(frame + 12) != 0x0800 || frame[23] != 1) return false;
  size_t ip_header = (size_t)(frame[14] & 0xf) * 4;
  return memcmp(frame + 26, peer, 4) == 0 && frame[14 + ip_header] == 0 /* echo reply */ &&
         get16(frame + 14 + ip_header + 4) == 0xc1f0 /* our identifier */;
}

/* One echo request with sequence `sequence`; true once answered (three
 * tries: a frame may be lost, as on any network). */
static bool ping_once(const uint8_t ip[4], const uint8_t peer[4], const uint8_t peer_mac[6],
                      uint16_t sequence) {
  uint8_t ping[14 + 20 + 8 + 32] = {0};
  memcpy(ping, peer_mac, 6);
  memcpy(ping + 6, mac, 6);
  put16(ping + 12, 0x0800);
  uint8_t* ipv4 = ping + 14;
  ipv4[0] = 0x45;
  put16(ipv4 + 2, 20 + 8 + 32);
  ipv4[8] = 64; /* TTL */
  ipv4[9] = 1;  /* ICMP */
  memcpy(ipv4 + 12, ip, 4);
  memcpy(ipv4 + 16, peer, 4);
  put16(ipv4 + 10, checksum(ipv4, 20));
  uint8_t* icmp = ipv4 + 20;
  icmp[0] = 8; /* echo request */
  put16(icmp + 4, 0xc1f0);
  put16(icmp + 6, sequence);
  for (unsigned i = 0; i < 32; ++i) icmp[8 + i] = (uint8_t)i;
  put16(icmp + 2, checksum(icmp, 8 + 32));
  for (int attempt = 0; attempt < 3; ++attempt) {
    send(ping, sizeof(ping));
    if (receive(is_echo_reply, (void*)peer, 1000)) return true;
  }
  return false;
}

void test_virtio_net(const char* ip_text, const char* peer_text, unsigned pings) {
  uint8_t ip[4], peer[4];
  if (!parse_ip(ip_text, ip) || !parse_ip(peer_text, peer)) {
    check("virtio-net: ip= and peer= given", false);
    return;
  }
  memcpy(our_ip, ip, 4);
  check("virtio-net device found with its capabilities", virtio_find(0x1041, &dev));
  if (!dev.common) return;
  printf("virtio-net: 00:%02x.0 BAR0 at %lx\n", dev.slot, dev.bar);
  bool ready = virtio_begin(&dev, F_MAC | F_STATUS) &&
               virtio_queue(&dev, 0, QUEUE_SIZE, rx_descriptors, rx_avail, rx_used) &&
               virtio_queue(&dev, 1, QUEUE_SIZE, tx_descriptors, tx_avail, tx_used) && virtio_driver_ok(&dev);
  check("virtio-net: driver setup accepted", ready);
  if (!ready) return;
  for (unsigned i = 0; i < 6; ++i) mac[i] = mmio_read8(dev.device + i);
  uint16_t status = mmio_read16(dev.device + 6);
  printf("virtio-net: MAC %02x:%02x:%02x:%02x:%02x:%02x, link %s\n", mac[0], mac[1], mac[2], mac[3], mac[4],
         mac[5], (status & 1) ? "up" : "down");
  check("virtio-net: link is up", (status & 1) != 0);
  for (uint16_t i = 0; i < QUEUE_SIZE; ++i) give_rx_buffer(i);
  virtio_notify(&dev, 0);

  /* ARP: who has `peer`? Asked a few times: the bridge may still be
   * learning, and the first frames can race the tap coming up. */
  uint8_t arp[42] = {0};
  memset(arp, 0xff, 6);
  memcpy(arp + 6, mac, 6);
  put16(arp + 12, 0x0806);
  put16(arp + 14, 1);      /* Ethernet */
  put16(arp + 16, 0x0800); /* IPv4 */
  arp[18] = 6;
  arp[19] = 4;
  put16(arp + 20, 1); /* request */
  memcpy(arp + 22, mac, 6);
  memcpy(arp + 28, ip, 4);
  memcpy(arp + 38, peer, 4);
  struct arp_wait wait = {ip, peer, {0}};
  bool resolved = false;
  bool sent = true;
  for (int attempt = 0; attempt < 5 && !resolved; ++attempt) {
    sent &= send(arp, sizeof(arp));
    resolved = receive(is_arp_reply, &wait, 1000);
  }
  check("virtio-net: frames transmitted", sent);
  check("virtio-net: ARP reply from the peer", resolved);
  if (!resolved) return;
  printf("virtio-net: %s is at %02x:%02x:%02x:%02x:%02x:%02x\n", peer_text, wait.peer_mac[0],
         wait.peer_mac[1], wait.peer_mac[2], wait.peer_mac[3], wait.peer_mac[4], wait.peer_mac[5]);

  /* ICMP echo: the host's IP stack answers through the same path. */
  check("virtio-net: ping answered by the peer", ping_once(ip, peer, wait.peer_mac, 1));
  /* More pings, 100 ms apart (the host may restart the server meanwhile). */
  unsigned unanswered = 0;
  for (unsigned sequence = 2; sequence <= pings; ++sequence) {
    if (!ping_once(ip, peer, wait.peer_mac, (uint16_t)sequence)) ++unanswered;
    delay_us(100000);
  }
  if (pings > 1) {
    printf("virtio-net: %u pings, %u unanswered\n", pings, unanswered);
    check("virtio-net: every ping answered", unanswered == 0);
  }
  check("virtio-net: device healthy", (mmio_read8(dev.common + 0x14) & 0x40) == 0);
}
