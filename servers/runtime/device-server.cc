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
#include "proto/doorbell-pipe.h"

namespace cellvisor {

DeviceServer::DeviceServer(std::string serverName, ServerResources& resources, PciFunction& function)
    : serverName_(std::move(serverName)),
      resources_(resources),
      function_(function),
      layout_(function.layout()) {
  StateHeader& header = resources_.state->header();
  if (resources_.queueDoorbells.size() != layout_.doorbellCount ||
      resources_.interrupts.size() != layout_.msixVectors) {
    throw std::runtime_error(fmt::format(
        "the spawner gave {} doorbells and {} interrupts; the device has {} doorbells and {} vectors",
        resources_.queueDoorbells.size(), resources_.interrupts.size(), layout_.doorbellCount,
        layout_.msixVectors));
  }
  if (resources_.restart) ++header.restarts;
  header.failureNotice = function_.failureNotice();
  uv_loop_init(&loop_);  // After the checks: a constructor that throws has no destructor to close it.
  ++header.generation;
  // On a restart the function finishes a completion cut short at once, and
  // raises its vector.
  function_.start([this](uint16_t vector) { signalVector(vector); });
  channel_ =
      std::make_unique<MessageChannel>(resources_.rings->replyWriter(), resources_.rings->requestReader(),
                                       resources_.replyDoorbell.get(), resources_.requestDoorbell.get());
  watch(resources_.requestDoorbell.get(), [this] {
    emptyDoorbellPipe(resources_.requestDoorbell.get());
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
  for (uint16_t doorbell = 0; doorbell < layout_.doorbellCount; ++doorbell) {
    int fd = resources_.queueDoorbells[doorbell].get();
    watch(fd, [this, fd, doorbell] {
      eventfd_t value;
      eventfd_read(fd, &value);
      if (!paused_) kicked(doorbell);
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
    if (function_.live()) {
      for (uint16_t doorbell = 0; doorbell < layout_.doorbellCount; ++doorbell) function_.doorbell(doorbell);
    }
  } catch (const std::exception& error) {
    stop(EXIT_BACKEND_FAILED, error.what());  // As for a watched fd's handler (readable()).
    return exitStatus_;
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  return exitStatus_;
}

void DeviceServer::kicked(uint16_t doorbell) {
  function_.doorbell(doorbell);
  busyPoll();
}

void DeviceServer::busyPoll() {
  if (pollMicros_ == 0) return;
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::microseconds(pollMicros_);
  while (Clock::now() < deadline) {
    if (function_.poll()) deadline = Clock::now() + std::chrono::microseconds(pollMicros_);
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

void DeviceServer::describeLayout(proto::HelloReply::Builder hello) const {
  auto bars = hello.initBars(static_cast<unsigned>(layout_.bars.size()));
  for (unsigned i = 0; i < bars.size(); ++i) {
    const FunctionBar& bar = layout_.bars[i];
    bars[i].setIndex(bar.index);
    bars[i].setSize(bar.size);
    bars[i].setKind(bar.kind == pci::BarKind::IO         ? proto::PciBar::Kind::IO
                    : bar.kind == pci::BarKind::MEMORY32 ? proto::PciBar::Kind::MEMORY32
                                                         : proto::PciBar::Kind::MEMORY64);
    bars[i].setPrefetchable(bar.prefetchable);
    if (bar.sharedMemory) bars[i].initBacking().setSharedMemory(bar.sharedMemoryOffset);
  }
  auto doorbells = hello.initDoorbells(static_cast<unsigned>(layout_.doorbells.size()));
  for (unsigned i = 0; i < doorbells.size(); ++i) {
    const FunctionDoorbell& doorbell = layout_.doorbells[i];
    doorbells[i].setBar(doorbell.bar);
    doorbells[i].setOffset(doorbell.offset);
    doorbells[i].setLength(doorbell.length);
    doorbells[i].setQueue(doorbell.doorbell);
    doorbells[i].setStartsOff(doorbell.startsOff);
  }
  hello.setMsixVectors(layout_.msixVectors);
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
        auto done = reply.initDone();
        auto list = done.initMsixUpdates(static_cast<unsigned>(updates.size()));
        for (size_t i = 0; i < updates.size(); ++i) {
          list[static_cast<unsigned>(i)].setIndex(updates[i].vector);
          list[static_cast<unsigned>(i)].setAddress(updates[i].address);
          list[static_cast<unsigned>(i)].setData(updates[i].data);
        }
        std::vector<DoorbellSwitch> switches = function_.takeDoorbellSwitches();
        if (switches.empty()) return;
        auto switched = done.initDoorbellSwitches(static_cast<unsigned>(switches.size()));
        for (size_t i = 0; i < switches.size(); ++i) {
          switched[static_cast<unsigned>(i)].setQueue(switches[i].doorbell);
          switched[static_cast<unsigned>(i)].setOn(switches[i].on);
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
          describeLayout(hello);
          break;
        }
        case proto::Request::CONFIG_READ: {
          auto access = request.getConfigRead();
          reply.setValue(function_.configRead(access.getOffset(), access.getSize()));
          break;
        }
        case proto::Request::CONFIG_WRITE: {
          auto access = request.getConfigWrite();
          addEffects(function_.configWrite(access.getOffset(), access.getSize(), access.getValue()));
          break;
        }
        case proto::Request::BAR_READ: {
          auto access = request.getBarRead();
          reply.setValue(function_.barRead(access.getBar(), access.getOffset(), access.getSize()));
          break;
        }
        case proto::Request::BAR_WRITE: {
          auto access = request.getBarWrite();
          addEffects(
              function_.barWrite(access.getBar(), access.getOffset(), access.getSize(), access.getValue()));
          break;
        }
        case proto::Request::RESET:
          addEffects(function_.reset());
          break;
        case proto::Request::PAUSE:
          // Stop taking requests and finish those in flight before answering:
          // after the reply, guest memory and the state segment hold still.
          paused_ = true;
          function_.pause();
          addEffects({});
          break;
        case proto::Request::RESUME:
          paused_ = false;
          addEffects({});
          function_.resume();
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
