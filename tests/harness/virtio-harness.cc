#include "tests/harness/virtio-harness.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace cellvisor::testing {
namespace {

constexpr uint16_t DESC_NEXT = 1;
constexpr uint16_t DESC_WRITE = 2;
constexpr uint16_t DESC_INDIRECT = 4;

std::string procStatus(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(field + ":", 0) == 0) return line.substr(field.size() + 1);
  }
  return "";
}

std::filesystem::path namespaceOf(pid_t pid, const char* kind) {
  return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/ns/" + kind);
}

}  // namespace

std::vector<std::string> confinementProblems(pid_t pid) {
  std::vector<std::string> problems;
  if (procStatus(pid, "Seccomp").find('2') == std::string::npos) problems.push_back("no seccomp filter");
  if (procStatus(pid, "NoNewPrivs").find('1') == std::string::npos) problems.push_back("no no_new_privs");
  if (procStatus(pid, "CapEff").find("0000000000000000") == std::string::npos)
    problems.push_back("capabilities");
  if (namespaceOf(pid, "net") == namespaceOf(::getpid(), "net"))
    problems.push_back("the host's network namespace");
  if (::geteuid() == 0) {
    if (procStatus(pid, "Uid").find("65534") == std::string::npos) problems.push_back("not uid nobody");
    if (namespaceOf(pid, "pid") == namespaceOf(::getpid(), "pid"))
      problems.push_back("the host's PID namespace");
    if (procStatus(pid, "NSpid").find("\t1") == std::string::npos) problems.push_back("not pid 1 inside");
  }
  return problems;
}

VirtioHarness::VirtioHarness(const std::string& server, const std::string& options, UniqueFd backend,
                             uint16_t queues, uint64_t memoryBytes, const std::string& faultInjection)
    : memory_(memoryBytes) {
  ServerLaunch launch;
  launch.binary = findServerBinary(server);
  launch.deviceName = "harness";
  launch.options = options;
  launch.backends.push_back(std::move(backend));
  launch.queues = queues;
  launch.vectors = static_cast<uint16_t>(queues + 1);
  launch.faultInjection = faultInjection;
  resources_ = std::make_unique<DeviceResources>(launch.deviceName, launch.queues, launch.vectors);
  process_ = std::make_unique<DeviceServerProcess>(std::move(launch), *resources_, memory_.memfd(),
                                                   memory_.regions());
  channel_ = std::make_unique<DeviceChannel>(*resources_);
  // Unless a test supervises it, a dead server stays dead: fail at once.
  channel_->setServerGone([this] { return !process_->supervised() && process_->exited(); });
  proxy_ = std::make_unique<PciServerProxy>(*channel_, wiring_);
  queues_.resize(queues);
}

uint64_t VirtioHarness::initialize(uint64_t accept, uint16_t queueSize) {
  proxy_->assignBar(0, BAR_ADDRESS);
  proxy_->enableDecoding();
  // Walk the capability list as a driver must.
  for (uint32_t at = proxy_->readConfig(0x34, 1), steps = 0; at != 0 && steps < 48; ++steps) {
    uint32_t id = proxy_->readConfig(static_cast<uint16_t>(at), 1);
    uint32_t next = proxy_->readConfig(static_cast<uint16_t>(at + 1), 1);
    if (id == 0x09) {
      uint32_t type = proxy_->readConfig(static_cast<uint16_t>(at + 3), 1);
      uint32_t offset = proxy_->readConfig(static_cast<uint16_t>(at + 8), 4);
      if (type == 1) common_ = offset;
      if (type == 2) {
        notify_ = offset;
        notifyMultiplier_ = proxy_->readConfig(static_cast<uint16_t>(at + 16), 4);
      }
      if (type == 4) deviceConfig_ = offset;
    } else if (id == 0x11) {
      msixTable_ = proxy_->readConfig(static_cast<uint16_t>(at + 4), 4) & ~7u;
      uint32_t control = proxy_->readConfig(static_cast<uint16_t>(at + 2), 2);
      proxy_->writeConfig(static_cast<uint16_t>(at + 2), 2, control | 0x8000);  // MSI-X enable.
    }
    at = next;
  }
  if (notifyMultiplier_ == 0 || msixTable_ == 0)
    throw std::runtime_error("device lacks notify or MSI-X capability");

  barWrite(common_ + 0x14, 1, 0);  // Reset.
  barWrite(common_ + 0x14, 1, 1);  // ACKNOWLEDGE
  barWrite(common_ + 0x14, 1, 3);  // DRIVER
  barWrite(common_ + 0x00, 4, 0);
  uint64_t offered = barRead(common_ + 0x04, 4);
  barWrite(common_ + 0x00, 4, 1);
  offered |= barRead(common_ + 0x04, 4) << 32;
  uint64_t wanted = (offered & accept) | F_VERSION_1;
  barWrite(common_ + 0x08, 4, 0);
  barWrite(common_ + 0x0c, 4, wanted & 0xffffffff);
  barWrite(common_ + 0x08, 4, 1);
  barWrite(common_ + 0x0c, 4, wanted >> 32);
  eventIdx_ = wanted & F_EVENT_IDX;
  barWrite(common_ + 0x14, 1, 3 | 8);  // FEATURES_OK
  if (!(barRead(common_ + 0x14, 1) & 8)) throw std::runtime_error("device refused our features");

  uint16_t vectors = channel_->vectorCount();
  for (uint16_t vector = 0; vector < vectors; ++vector) {
    uint64_t entry = msixTable_ + 16ull * vector;
    barWrite(entry + 0, 4, 0xfee00000);
    barWrite(entry + 4, 4, 0);
    barWrite(entry + 8, 4, 0x40u + vector);
    barWrite(entry + 12, 4, 0);  // Unmask.
  }
  barWrite(common_ + 0x10, 2, 0);  // Config changes on vector 0.
  for (uint16_t index = 0; index < queues_.size(); ++index) {
    Queue& queue = queues_[index];
    queue = Queue{};  // After a reset the driver starts each queue afresh.
    barWrite(common_ + 0x16, 2, index);
    uint16_t max = static_cast<uint16_t>(barRead(common_ + 0x18, 2));
    queue.size = std::min(max, queueSize);
    barWrite(common_ + 0x18, 2, queue.size);
    queue.descriptors = allocate(16ull * queue.size);
    queue.avail = allocate(6 + 2ull * queue.size);
    queue.used = allocate(6 + 8ull * queue.size);
    barWrite(common_ + 0x20, 8, queue.descriptors);
    barWrite(common_ + 0x28, 4, queue.avail & 0xffffffff);  // Split halves, as some drivers do.
    barWrite(common_ + 0x2c, 4, queue.avail >> 32);
    barWrite(common_ + 0x30, 8, queue.used);
    barWrite(common_ + 0x1a, 2, index + 1u);
    barWrite(common_ + 0x1c, 2, 1);
    for (uint16_t i = 0; i < queue.size; ++i)
      queue.freeDescriptors.push_back(static_cast<uint16_t>(queue.size - 1 - i));
  }
  barWrite(common_ + 0x14, 1, 3 | 8 | 4);  // DRIVER_OK
  return offered;
}

uint8_t VirtioHarness::status() {
  return static_cast<uint8_t>(barRead(common_ + 0x14, 1));
}

bool VirtioHarness::reset(std::chrono::milliseconds timeout) {
  barWrite(common_ + 0x14, 1, 0);
  // A driver must wait for the status to read back 0 before it reuses any
  // buffer it had given the device (virtio 1.x, 4.1.4.3.2).
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (status() != 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

uint64_t VirtioHarness::configRead(uint32_t offset, uint8_t size) {
  return barRead(deviceConfig_ + offset, size);
}

uint64_t VirtioHarness::allocate(uint64_t bytes, uint64_t alignment) {
  nextFree_ = (nextFree_ + alignment - 1) & ~(alignment - 1);
  uint64_t address = nextFree_;
  nextFree_ += bytes;
  if (nextFree_ > memory_.size()) throw std::length_error("harness guest memory exhausted");
  std::memset(host(address, bytes), 0, bytes);
  return address;
}

void VirtioHarness::writeDescriptor(uint16_t queueIndex, uint16_t index, uint64_t address, uint32_t length,
                                    uint16_t flags, uint16_t next) {
  Queue& queue = queues_.at(queueIndex);
  uint8_t* at = host(queue.descriptors + 16ull * index, 16);
  std::memcpy(at, &address, 8);
  std::memcpy(at + 8, &length, 4);
  std::memcpy(at + 12, &flags, 2);
  std::memcpy(at + 14, &next, 2);
}

uint16_t VirtioHarness::submit(uint16_t queueIndex, const std::vector<Buffer>& buffers, bool indirect) {
  Queue& queue = queues_.at(queueIndex);
  if (indirect) {
    uint64_t table = allocate(16ull * buffers.size(), 16);
    for (size_t i = 0; i < buffers.size(); ++i) {
      uint16_t flags = static_cast<uint16_t>((buffers[i].writable ? DESC_WRITE : 0) |
                                             (i + 1 < buffers.size() ? DESC_NEXT : 0));
      uint8_t* at = host(table + 16 * i, 16);
      uint16_t next = static_cast<uint16_t>(i + 1);
      std::memcpy(at, &buffers[i].address, 8);
      std::memcpy(at + 8, &buffers[i].length, 4);
      std::memcpy(at + 12, &flags, 2);
      std::memcpy(at + 14, &next, 2);
    }
    if (queue.freeDescriptors.empty()) throw std::runtime_error("queue full");
    uint16_t head = queue.freeDescriptors.back();
    queue.freeDescriptors.pop_back();
    writeDescriptor(queueIndex, head, table, static_cast<uint32_t>(16 * buffers.size()), DESC_INDIRECT, 0);
    queue.chains[head] = {head};
    publish(queueIndex, head);
    return head;
  }
  if (queue.freeDescriptors.size() < buffers.size()) throw std::runtime_error("queue full");
  std::vector<uint16_t> used;
  for (size_t i = 0; i < buffers.size(); ++i) {
    used.push_back(queue.freeDescriptors.back());
    queue.freeDescriptors.pop_back();
  }
  for (size_t i = 0; i < buffers.size(); ++i) {
    bool last = i + 1 == buffers.size();
    uint16_t flags = static_cast<uint16_t>((buffers[i].writable ? DESC_WRITE : 0) | (last ? 0 : DESC_NEXT));
    writeDescriptor(queueIndex, used[i], buffers[i].address, buffers[i].length, flags,
                    last ? 0 : used[i + 1]);
  }
  queue.chains[used.front()] = used;
  publish(queueIndex, used.front());
  return used.front();
}

void VirtioHarness::publish(uint16_t queueIndex, uint16_t head) {
  Queue& queue = queues_.at(queueIndex);
  uint8_t* avail = host(queue.avail, 6 + 2ull * queue.size);
  std::memcpy(avail + 4 + 2 * (queue.availIdx % queue.size), &head, 2);
  ++queue.availIdx;
  __atomic_store_n(reinterpret_cast<uint16_t*>(avail + 2), queue.availIdx, __ATOMIC_RELEASE);
}

void VirtioHarness::kick(uint16_t queueIndex) {
  Queue& queue = queues_.at(queueIndex);
  if (eventIdx_) {
    // vring_need_event: kick only if the device's avail_event lies in what we added.
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t event = __atomic_load_n(reinterpret_cast<uint16_t*>(host(queue.used + 4 + 8ull * queue.size, 2)),
                                     __ATOMIC_ACQUIRE);
    uint16_t added = static_cast<uint16_t>(queue.availIdx - queue.lastKickedAvail);
    bool needed = static_cast<uint16_t>(queue.availIdx - event - 1) < added;
    queue.lastKickedAvail = queue.availIdx;
    if (!needed) return;
  }
  // What KVM does on a doorbell write: signal the queue's ioeventfd.
  uint64_t doorbell = BAR_ADDRESS + notify_ + uint64_t{notifyMultiplier_} * queueIndex;
  auto found = wiring_.doorbells.find(doorbell);
  int fd = found != wiring_.doorbells.end() ? found->second : channel_->queueDoorbell(queueIndex);
  eventfd_write(fd, 1);
}

bool VirtioHarness::interruptPending(uint16_t vector, std::chrono::milliseconds timeout) {
  pollfd fd{channel_->interrupt(vector), POLLIN, 0};
  if (::poll(&fd, 1, static_cast<int>(timeout.count())) <= 0) return false;
  eventfd_t value;
  eventfd_read(fd.fd, &value);
  return true;
}

std::vector<Completion> VirtioHarness::waitForCompletions(uint16_t queueIndex, size_t atLeast,
                                                          std::chrono::milliseconds timeout) {
  Queue& queue = queues_.at(queueIndex);
  std::vector<Completion> completions;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  uint8_t* used = host(queue.used, 6 + 8ull * queue.size);
  while (completions.size() < atLeast) {
    uint16_t usedIdx = __atomic_load_n(reinterpret_cast<uint16_t*>(used + 2), __ATOMIC_ACQUIRE);
    while (queue.lastUsed != usedIdx) {
      Completion completion;
      uint32_t id;
      std::memcpy(&id, used + 4 + 8 * (queue.lastUsed % queue.size), 4);
      std::memcpy(&completion.length, used + 8 + 8 * (queue.lastUsed % queue.size), 4);
      completion.head = static_cast<uint16_t>(id);
      completions.push_back(completion);
      ++queue.lastUsed;
      auto chain = queue.chains.find(completion.head);
      if (chain != queue.chains.end()) {
        for (uint16_t descriptor : chain->second) queue.freeDescriptors.push_back(descriptor);
        queue.chains.erase(chain);
      }
    }
    // EVENT_IDX: ask for an interrupt as soon as anything beyond what we saw is used.
    uint8_t* avail = host(queue.avail, 6 + 2ull * queue.size);
    __atomic_store_n(reinterpret_cast<uint16_t*>(avail + 4 + 2 * queue.size), queue.lastUsed,
                     __ATOMIC_SEQ_CST);
    if (completions.size() >= atLeast) break;
    if (__atomic_load_n(reinterpret_cast<uint16_t*>(used + 2), __ATOMIC_ACQUIRE) != queue.lastUsed) continue;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    interruptPending(static_cast<uint16_t>(queueIndex + 1), std::min(left, std::chrono::milliseconds(50)));
  }
  return completions;
}

SupervisedServer::SupervisedServer(DeviceServerProcess& process) {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &stop_, [](uv_async_t* async) { uv_stop(async->loop); });
  supervisor_ = std::make_unique<DeviceSupervisor>(&loop_, process, [this] { return stopping_.load(); });
  thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
}

bool killUntilFailed(DeviceServerProcess& process, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!process.failed() && std::chrono::steady_clock::now() < deadline) {
    pid_t pid = process.pid();
    if (pid > 0) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return process.failed();
}

SupervisedServer::~SupervisedServer() {
  stopping_ = true;
  uv_async_send(&stop_);
  thread_.join();
  // Close every handle and let the loop finish closing them.
  supervisor_.reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&stop_), nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

}  // namespace cellvisor::testing
