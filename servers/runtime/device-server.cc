#include "servers/runtime/device-server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <system_error>

#include "device.capnp.h"

namespace cellvisor {

DeviceServer::DeviceServer(std::string serverName, ServerResources& resources, VirtioDevice& device)
    : serverName_(std::move(serverName)), resources_(resources), device_(device) {
  VirtioState& state = resources_.state->state();
  if (resources_.restart && state.magic == STATE_MAGIC) {
    if (state.layoutVersion != STATE_LAYOUT_VERSION) {
      throw std::runtime_error("state segment layout " + std::to_string(state.layoutVersion) +
                               " is not ours (" + std::to_string(STATE_LAYOUT_VERSION) + ")");
    }
    ++state.restarts;
  }
  // Before the transport exists: on a restart it finishes a completion cut
  // short at once, and raises that queue's vector.
  uint16_t vectors = VirtioTransport::vectorsFor(device_);
  if (device_.queueCount() > MAX_QUEUES || resources_.queueDoorbells.size() != device_.queueCount() ||
      resources_.interrupts.size() != vectors) {
    throw std::runtime_error(fmt::format(
        "the spawner gave {} doorbells and {} interrupts; the device has {} queues and {} vectors",
        resources_.queueDoorbells.size(), resources_.interrupts.size(), device_.queueCount(), vectors));
  }
  uv_loop_init(&loop_);  // After the checks: a constructor that throws has no destructor to close it.
  ++state.generation;
  transport_ = std::make_unique<VirtioTransport>(device_, *resources_.memory, state,
                                                 [this](uint16_t vector) { signalVector(vector); });
  channel_ =
      std::make_unique<MessageChannel>(resources_.rings->replyWriter(), resources_.rings->requestReader(),
                                       resources_.replyDoorbell.get(), resources_.requestDoorbell.get());
  watch(resources_.requestDoorbell.get(), [this] {
    eventfd_t value;
    eventfd_read(resources_.requestDoorbell.get(), &value);
    serveRequests();
  });
  if (resources_.lifeline >= 0) {
    // The spawner holds the other end for as long as it lives.
    int lifeline = resources_.lifeline;
    watch(lifeline, [this, lifeline] {
      char byte;
      if (::read(lifeline, &byte, 1) == 0) {
        std::cerr << serverName_ << ": spawner gone, exiting\n";
        uv_stop(&loop_);
      }
    });
  }
  for (uint16_t queue = 0; queue < device_.queueCount(); ++queue) {
    int fd = resources_.queueDoorbells[queue].get();
    watch(fd, [this, fd, queue] {
      eventfd_t value;
      eventfd_read(fd, &value);
      if (!paused_) kicked(queue);
    });
  }
}

DeviceServer::~DeviceServer() {
  for (auto& entry : watches_) uv_close(reinterpret_cast<uv_handle_t*>(&entry->poll), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);
  uv_loop_close(&loop_);
}

void DeviceServer::readable(uv_poll_t* poll, int status, int) {
  if (status < 0) return;
  auto* entry = static_cast<Watch*>(poll->data);
  try {
    entry->ready();
  } catch (const std::exception& error) {
    // The backend failed (its io_uring, its tap): the device cannot serve
    // on. Exit so the supervisor starts a successor, which takes up the
    // requests in flight.
    entry->server->stop(EXIT_BACKEND_FAILED, error.what());
  }
}

void DeviceServer::stop(int exitStatus, const std::string& why) {
  std::cerr << serverName_ << ": " << why << '\n';
  if (exitStatus_ == 0) exitStatus_ = exitStatus;
  uv_stop(&loop_);
}

void DeviceServer::setWatching(int fd, bool watching) {
  for (auto& entry : watches_) {
    if (entry->fd != fd) continue;
    if (!watching) {
      uv_poll_stop(&entry->poll);
      continue;
    }
    uv_poll_start(&entry->poll, UV_READABLE, readable);
  }
}

void DeviceServer::watch(int fd, std::function<void()> ready) {
  auto entry = std::make_unique<Watch>();
  entry->server = this;
  entry->fd = fd;
  entry->ready = std::move(ready);
  uv_poll_init(&loop_, &entry->poll, fd);
  entry->poll.data = entry.get();
  uv_poll_start(&entry->poll, UV_READABLE, readable);
  watches_.push_back(std::move(entry));
}

int DeviceServer::run() {
  // Requests may have been queued before we started (a restart): serve them,
  // then look at every queue once, since kicks may have come while we were down.
  serveRequests();
  try {
    if (transport_->live()) {
      for (uint16_t queue = 0; queue < device_.queueCount(); ++queue) transport_->doorbell(queue);
    }
  } catch (const std::exception& error) {
    stop(EXIT_BACKEND_FAILED, error.what());  // As for a watched fd's handler (readable()).
    return exitStatus_;
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  return exitStatus_;
}

void DeviceServer::kicked(uint16_t queue) {
  transport_->doorbell(queue);
  busyPoll();
}

void DeviceServer::busyPoll() {
  if (pollMicros_ == 0) return;
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::microseconds(pollMicros_);
  while (Clock::now() < deadline) {
    bool worked = device_.poll();
    for (uint16_t index = 0; index < device_.queueCount(); ++index) {
      SplitVirtqueue* live = transport_->queue(index);
      if (live != nullptr && live->pending() != 0) {
        transport_->doorbell(index);
        worked = true;
      }
    }
    if (worked) deadline = Clock::now() + std::chrono::microseconds(pollMicros_);
  }
}

std::string DeviceServer::injectFault() {
  // Test-only: make a call the sandbox forbids, on request of the spawner.
  // Only the first instance does, so the restarted one serves normally.
  const std::string& fault = resources_.faultInjection;
  if (fault.empty() || resources_.restart) return "";
  if (fault == "open") {
    int fd = ::open("/etc/passwd", O_RDONLY);
    if (fd >= 0) ::close(fd);
  } else if (fault == "socket") {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0) ::close(fd);
  } else if (fault == "execve") {
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    char* envp[] = {nullptr};
    ::execve("/bin/true", argv, envp);
  } else if (faultInjector_) {
    return faultInjector_(fault);
  }
  return "";
}

void DeviceServer::signalVector(uint16_t vector) {
  ++stats_.interrupts;
  eventfd_write(resources_.interrupts[vector].get(), 1);
}

void DeviceServer::recordReply(RequestLedger& ledger, uint64_t sequence, capnp::MessageBuilder& reply) {
  auto words = capnp::messageToFlatArray(reply);
  auto bytes = words.asBytes();
  // Forget the old record before the bytes change under it; a reply too big
  // to keep (none is: a few hundred bytes at most) is simply not recorded.
  ledger.answered.store(0, std::memory_order_release);
  if (bytes.size() > sizeof(ledger.reply)) return;
  std::memcpy(ledger.reply, bytes.begin(), bytes.size());
  ledger.replyBytes = static_cast<uint32_t>(bytes.size());
  ledger.answered.store(sequence, std::memory_order_release);
}

bool DeviceServer::resendRecordedReply(RequestLedger& ledger) {
  // Our own segment, but written by an instance that may have died half-way:
  // bounded and parsed like any message.
  size_t bytes = std::min<size_t>(ledger.replyBytes, sizeof(ledger.reply)) / sizeof(capnp::word);
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes);
  std::memcpy(words.begin(), ledger.reply, bytes * sizeof(capnp::word));
  capnp::FlatArrayMessageReader recorded(words);
  capnp::MallocMessageBuilder builder(256);
  builder.setRoot(recorded.getRoot<proto::Reply>());
  return channel_->send(builder);
}

void DeviceServer::serveRequests() {
  try {
    RequestLedger& ledger = resources_.rings->rings().ledger;
    while (auto message = channel_->tryReceive()) {
      auto request = message->root<proto::Request>();
      uint64_t sequence = request.getSequence();
      // Given up by the core (or a copy of one it has its answer to): a
      // register access must not happen late.
      if (sequence != ledger.awaited.load(std::memory_order_acquire)) continue;
      // Executed already, by us or the instance before us: the same answer
      // again, without doing it twice.
      if (sequence == ledger.answered.load(std::memory_order_acquire)) {
        if (!resendRecordedReply(ledger)) throw ProtocolError("the core stopped reading replies");
        continue;
      }
      capnp::MallocMessageBuilder builder(256);
      auto reply = builder.initRoot<proto::Reply>();
      reply.setSequence(request.getSequence());
      auto addEffects = [&](const std::vector<MsixUpdate>& updates) {
        auto list = reply.initDone().initMsixUpdates(static_cast<unsigned>(updates.size()));
        for (size_t i = 0; i < updates.size(); ++i) {
          list[static_cast<unsigned>(i)].setIndex(updates[i].vector);
          list[static_cast<unsigned>(i)].setAddress(updates[i].address);
          list[static_cast<unsigned>(i)].setData(updates[i].data);
        }
      };
      switch (request.which()) {
        case proto::Request::HELLO: {
          if (request.getHello().getCoreProtocolVersion() != proto::PROTOCOL_VERSION) {
            reply.setError("core speaks device protocol " +
                           std::to_string(request.getHello().getCoreProtocolVersion()) + ", server " +
                           serverName_ + " speaks " + std::to_string(proto::PROTOCOL_VERSION));
            break;
          }
          auto hello = reply.initHello();
          hello.setServerProtocolVersion(proto::PROTOCOL_VERSION);
          hello.setServerName(serverName_);
          auto bars = hello.initBars(1);
          bars[0].setIndex(0);
          bars[0].setSize(VirtioTransport::BAR0_SIZE);
          bars[0].setKind(proto::PciBar::Kind::MEMORY64);
          auto doorbells = hello.initDoorbells(device_.queueCount());
          for (uint16_t queue = 0; queue < device_.queueCount(); ++queue) {
            doorbells[queue].setBar(0);
            doorbells[queue].setOffset(VirtioTransport::NOTIFY + VirtioTransport::NOTIFY_MULTIPLIER * queue);
            doorbells[queue].setLength(0);
            doorbells[queue].setQueue(queue);
          }
          hello.setMsixVectors(transport_->vectorCount());
          break;
        }
        case proto::Request::CONFIG_READ: {
          auto access = request.getConfigRead();
          reply.setValue(transport_->configRead(access.getOffset(), access.getSize()));
          break;
        }
        case proto::Request::CONFIG_WRITE: {
          auto access = request.getConfigWrite();
          addEffects(transport_->configWrite(access.getOffset(), access.getSize(), access.getValue()));
          break;
        }
        case proto::Request::BAR_READ: {
          auto access = request.getBarRead();
          reply.setValue(transport_->barRead(access.getBar(), access.getOffset(), access.getSize()));
          break;
        }
        case proto::Request::BAR_WRITE: {
          auto access = request.getBarWrite();
          addEffects(
              transport_->barWrite(access.getBar(), access.getOffset(), access.getSize(), access.getValue()));
          break;
        }
        case proto::Request::RESET:
          addEffects(transport_->configWrite(0, 1, 0));  // Config offset 0 is read-only: no-op.
          transport_->barWrite(0, VirtioTransport::COMMON + 0x14, 1, 0);
          break;
        case proto::Request::PAUSE:
          // Stop taking requests and finish those in flight before answering:
          // after the reply, guest memory and the state segment hold still.
          paused_ = true;
          transport_->setPaused(true);
          device_.quiesce();
          addEffects({});
          break;
        case proto::Request::RESUME:
          paused_ = false;
          transport_->setPaused(false);
          addEffects({});
          for (uint16_t queue = 0; queue < device_.queueCount(); ++queue) transport_->doorbell(queue);
          break;
        case proto::Request::STATS: {
          auto stats = reply.initStats();
          stats.setRequests(stats_.requests);
          stats.setReadBytes(stats_.readBytes);
          stats.setWrittenBytes(stats_.writtenBytes);
          stats.setErrors(stats_.errors);
          stats.setInterrupts(stats_.interrupts);
          break;
        }
        case proto::Request::PING:
          if (std::string outcome = injectFault(); !outcome.empty()) {
            reply.setError("fault injection: " + outcome);
          } else {
            reply.setPong(request.getPing());
          }
          break;
        default:
          reply.setError("unknown request");
          break;
      }
      recordReply(ledger, sequence, builder);
      if (!channel_->send(builder)) throw ProtocolError("the core stopped reading replies");
    }
  } catch (const std::system_error& error) {
    // A system call failed serving a request (e.g. the backend's, draining
    // I/O for a reset).
    stop(EXIT_BACKEND_FAILED, error.what());
  } catch (const std::exception& error) {
    // A core that corrupts the protocol cannot be served; exit so the
    // supervisor sees it.
    stop(EXIT_PROTOCOL_ERROR, std::string("protocol error: ") + error.what());
  }
}

}  // namespace cellvisor
