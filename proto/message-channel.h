// Cap'n Proto messages over a ring pair with a doorbell each way
// (proto/doorbell-pipe.h: this side holds the write end of the one it rings
// and the read end of the one it waits on).
// One side sends requests and receives replies, the other the reverse.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "base/unique-fd.h"
#include "proto/ring.h"

namespace cellvisor {

// The peer broke the protocol (corrupt ring, malformed message).
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A received message, owning its (8-byte aligned) words.
class ReceivedMessage {
 public:
  explicit ReceivedMessage(const std::vector<uint8_t>& bytes);
  template <typename T>
  typename T::Reader root() {
    return reader_->getRoot<T>();
  }

 private:
  kj::Array<capnp::word> words_;
  std::unique_ptr<capnp::FlatArrayMessageReader> reader_;
};

class MessageChannel {
 public:
  MessageChannel(RingWriter writer, RingReader reader, int sendDoorbell, int receiveDoorbell);

  // Sends one message; waits up to `timeout` for ring space. False on timeout.
  bool send(capnp::MessageBuilder& message, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Sends one frame of any bytes, as `send` does. For peers that test how
  // the other side takes garbage: a ring has one writer, so junk must go
  // through the same one as the messages around it.
  bool sendBytes(std::span<const uint8_t> bytes, std::chrono::milliseconds timeout);
  // Next message if one is there; throws ProtocolError if the ring is corrupt
  // or the message malformed.
  std::optional<ReceivedMessage> tryReceive();
  // Blocks until the peer rings our doorbell or `timeout` passes.
  bool waitForDoorbell(std::chrono::milliseconds timeout);
  int receiveDoorbell() const { return receiveDoorbell_; }

 private:
  RingWriter writer_;
  RingReader reader_;
  int sendDoorbell_;
  int receiveDoorbell_;
  std::vector<uint8_t> scratch_;
};

}  // namespace cellvisor
