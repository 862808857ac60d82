#include "proto/message-channel.h"

#include <poll.h>

#include <cstring>
#include <thread>

#include "proto/doorbell-pipe.h"

namespace cellvisor {

ReceivedMessage::ReceivedMessage(const std::vector<uint8_t>& bytes)
    : words_(kj::heapArray<capnp::word>((bytes.size() + 7) / 8)) {
  std::memset(words_.begin(), 0, words_.size() * sizeof(capnp::word));
  std::memcpy(words_.begin(), bytes.data(), bytes.size());
  capnp::ReaderOptions options;
  options.traversalLimitInWords = 64 * 1024;  // Messages are small; refuse amplification.
  options.nestingLimit = 16;
  try {
    reader_ = std::make_unique<capnp::FlatArrayMessageReader>(words_.asPtr(), options);
    // Every pointer followed once, now: one that leads outside the message
    // (or no root at all) is refused here, not thrown later from a getter.
    reader_->getRoot<capnp::AnyPointer>().targetSize();
  } catch (const kj::Exception& error) {
    throw ProtocolError(std::string("malformed message: ") + error.getDescription().cStr());
  }
}

MessageChannel::MessageChannel(RingWriter writer, RingReader reader, int sendDoorbell, int receiveDoorbell)
    : writer_(writer), reader_(reader), sendDoorbell_(sendDoorbell), receiveDoorbell_(receiveDoorbell) {}

bool MessageChannel::send(capnp::MessageBuilder& message, std::chrono::milliseconds timeout) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  return sendBytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(words.begin()),
                                            words.size() * sizeof(capnp::word)),
                   timeout);
}

bool MessageChannel::sendBytes(std::span<const uint8_t> bytes, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!writer_.tryWrite(bytes)) {
    // Full ring: the reader is behind. Wait for it rather than drop.
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  ringDoorbellPipe(sendDoorbell_);
  return true;
}

std::optional<ReceivedMessage> MessageChannel::tryReceive() {
  switch (reader_.tryRead(scratch_)) {
    case RingReader::Status::EMPTY:
      return std::nullopt;
    case RingReader::Status::CORRUPT:
      throw ProtocolError("peer corrupted the message ring");
    case RingReader::Status::MESSAGE:
      break;
  }
  return ReceivedMessage(scratch_);
}

bool MessageChannel::waitForDoorbell(std::chrono::milliseconds timeout) {
  pollfd fd{receiveDoorbell_, POLLIN, 0};
  int ready = ::poll(&fd, 1, static_cast<int>(timeout.count()));
  if (ready <= 0) return false;
  emptyDoorbellPipe(receiveDoorbell_);
  return true;
}

}  // namespace cellvisor
