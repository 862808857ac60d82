// The shared-memory message ring: order, wrap-around, full and empty, and a
// peer that writes garbage (rejected, never trusted).
#include "proto/ring.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <numeric>
#include <thread>

#include "proto/ring-segment.h"

namespace cellvisor {
namespace {

struct SmallRing {
  static constexpr uint32_t CAPACITY = 256;
  RingIndices indices{};
  alignas(64) uint8_t data[CAPACITY] = {};
  RingWriter writer{&indices, data, CAPACITY};
  RingReader reader{&indices, data, CAPACITY};
};

std::vector<uint8_t> message(size_t length, uint8_t seed) {
  std::vector<uint8_t> bytes(length);
  std::iota(bytes.begin(), bytes.end(), seed);
  return bytes;
}

TEST(Ring, EmptyThenOneMessage) {
  SmallRing ring;
  std::vector<uint8_t> out;
  EXPECT_EQ(ring.reader.tryRead(out), RingReader::Status::EMPTY);
  ASSERT_TRUE(ring.writer.tryWrite(message(10, 1)));
  ASSERT_EQ(ring.reader.tryRead(out), RingReader::Status::MESSAGE);
  EXPECT_EQ(out, message(10, 1));
  EXPECT_EQ(ring.reader.tryRead(out), RingReader::Status::EMPTY);
}

TEST(Ring, FullRingAppliesBackPressureAndNeverDrops) {
  SmallRing ring;
  int written = 0;
  while (ring.writer.tryWrite(message(40, static_cast<uint8_t>(written)))) ++written;
  EXPECT_EQ(written, 256 / 48);  // 8-byte header + 40 bytes each.
  std::vector<uint8_t> out;
  ASSERT_EQ(ring.reader.tryRead(out), RingReader::Status::MESSAGE);
  EXPECT_EQ(out, message(40, 0));
  EXPECT_TRUE(ring.writer.tryWrite(message(40, 99))) << "space again once the reader moved on";
  for (int i = 1; i < written; ++i) {
    ASSERT_EQ(ring.reader.tryRead(out), RingReader::Status::MESSAGE);
    EXPECT_EQ(out, message(40, static_cast<uint8_t>(i)));
  }
  ASSERT_EQ(ring.reader.tryRead(out), RingReader::Status::MESSAGE);
  EXPECT_EQ(out, message(40, 99));
}

TEST(Ring, WrapsAroundManyTimesInOrder) {
  SmallRing ring;
  std::vector<uint8_t> out;
  for (int i = 0; i < 1000; ++i) {
    size_t length = 1 + (i * 37) % 100;
    ASSERT_TRUE(ring.writer.tryWrite(message(length, static_cast<uint8_t>(i))));
    ASSERT_EQ(ring.reader.tryRead(out), RingReader::Status::MESSAGE);
    ASSERT_EQ(out, message(length, static_cast<uint8_t>(i))) << i;
  }
}

TEST(Ring, OversizeMessageIsRefused) {
  SmallRing ring;
  EXPECT_THROW(ring.writer.tryWrite(message(ring.writer.maxMessage() + 1, 0)), std::length_error);
  EXPECT_TRUE(ring.writer.tryWrite(message(ring.writer.maxMessage(), 0)));
}

TEST(Ring, GarbageLengthIsCorruptNotTrusted) {
  SmallRing ring;
  ASSERT_TRUE(ring.writer.tryWrite(message(16, 0)));
  uint32_t huge = 100000;
  std::memcpy(ring.data, &huge, 4);  // The peer rewrites the length after publishing.
  std::vector<uint8_t> out;
  EXPECT_EQ(ring.reader.tryRead(out), RingReader::Status::CORRUPT);
  EXPECT_EQ(ring.reader.tryRead(out), RingReader::Status::CORRUPT) << "stays unusable";
}

TEST(Ring, ImpossibleHeadIsCorrupt) {
  SmallRing ring;
  ring.indices.head.store(100000);
  std::vector<uint8_t> out;
  EXPECT_EQ(ring.reader.tryRead(out), RingReader::Status::CORRUPT);
}

TEST(Ring, TornMessageIsNotVisibleUntilPublished) {
  SmallRing ring;
  // Bytes are written but the head not advanced: the reader sees nothing.
  uint32_t length = 8;
  std::memcpy(ring.data, &length, 4);
  std::vector<uint8_t> out;
  EXPECT_EQ(ring.reader.tryRead(out), RingReader::Status::EMPTY);
  // A head that ends mid-frame is corrupt.
  ring.indices.head.store(8);
  EXPECT_EQ(ring.reader.tryRead(out), RingReader::Status::CORRUPT);
}

TEST(Ring, LyingConsumerOnlyStallsItself) {
  SmallRing ring;
  ring.indices.tail.store(123456789);  // Tail far beyond head.
  // The writer must neither crash nor overwrite unread data it cannot account for.
  EXPECT_FALSE(ring.writer.tryWrite(message(16, 0)));
}

TEST(RingSegment, TwoMappingsShareRingsAcrossThreads) {
  RingSegment core = RingSegment::create();
  RingSegment server = RingSegment::open(UniqueFd(::dup(core.fd())));
  RingWriter writer = core.requestWriter();
  RingReader reader = server.requestReader();
  constexpr int COUNT = 100000;
  std::thread producer([&] {
    for (int i = 0; i < COUNT;) {
      uint32_t value = static_cast<uint32_t>(i);
      if (writer.tryWrite({reinterpret_cast<uint8_t*>(&value), 4})) ++i;
    }
  });
  std::vector<uint8_t> out;
  for (int expected = 0; expected < COUNT;) {
    auto status = reader.tryRead(out);
    ASSERT_NE(status, RingReader::Status::CORRUPT);
    if (status == RingReader::Status::EMPTY) continue;
    uint32_t value;
    std::memcpy(&value, out.data(), 4);
    ASSERT_EQ(value, static_cast<uint32_t>(expected));
    ++expected;
  }
  producer.join();
}

TEST(RingSegment, RejectsAForeignSegment) {
  RingSegment real = RingSegment::create();
  int fd = ::memfd_create("junk", MFD_CLOEXEC);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  EXPECT_THROW(RingSegment::open(UniqueFd(fd)), std::runtime_error);
}

}  // namespace
}  // namespace cellvisor
