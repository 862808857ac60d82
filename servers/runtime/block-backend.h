// Asynchronous block I/O on an image file or block device through io_uring.
// Shared by the block-type servers (virtio-blk, NVMe): they describe each
// operation with a tag and get the tag back with the result.
//
// The ring reaches kernel file operations that the seccomp filter never
// sees, so it is locked down before its first use: it takes only the opcodes
// the backend issues, and only on the image, registered as fixed file 0.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>

#include "base/unique-fd.h"

namespace cellvisor {

class BlockBackend {
 public:
  enum class Op { READ, WRITE, FLUSH, DISCARD, WRITE_ZEROES };
  // Bounds on the submission ring. The kernel allows 32768 entries, but a
  // disk gains nothing from thousands in flight; operations beyond the ring
  // wait in the backend's own queue.
  static constexpr unsigned MIN_RING_ENTRIES = 64;
  static constexpr unsigned MAX_RING_ENTRIES = 4096;

  // Takes the backend fd as opened by the spawner; `depth` is how many
  // operations the device may want in flight at once (the ring is sized from
  // it, within the bounds above). Throws std::invalid_argument when the fd is
  // no disk (see disk-image.h), std::system_error when io_uring refuses.
  BlockBackend(UniqueFd fd, unsigned depth, bool readOnly);
  BlockBackend(const BlockBackend&) = delete;
  BlockBackend& operator=(const BlockBackend&) = delete;

  uint64_t sizeBytes() const { return sizeBytes_; }
  bool readOnly() const { return readOnly_; }
  // Signalled when completions are ready; watch it on the event loop.
  int completionFd() const { return eventFd_.get(); }

  // Queues an operation; `iov` must stay valid until its completion, or
  // until dropWaiting() forgets it. Never fails: when the ring is full the
  // operation waits its turn.
  void submit(Op op, uint64_t tag, std::span<const iovec> iov, uint64_t offset, uint64_t length = 0,
              bool unmap = false);
  // Hands queued operations to the kernel. Throws std::system_error when
  // the ring fails: the server cannot go on, and its successor takes up the
  // requests in flight.
  void flushSubmissions();
  // Blocks until at least one completion is ready; returns at once when
  // nothing is outstanding. Throws as flushSubmissions() does.
  void waitForCompletion();
  // Calls `done(tag, result)` (result: bytes or -errno) for each completion.
  void reap(const std::function<void(uint64_t tag, int32_t result)>& done);
  // Operations submitted and not yet reaped, waiting or in the kernel.
  size_t outstanding() const { return waiting_.size() + inKernel_; }
  // Forgets the operations still waiting for room in the ring: they never
  // reached the kernel. For a device reset, after which their buffers are
  // gone; those in the kernel complete as usual and the caller waits for them.
  void dropWaiting() { waiting_.clear(); }

  // Test-only fault injection, for tests that play a compromised or failing
  // server: "uring-openat" and "uring-socket" submit what the backend never
  // does and describe the kernel's answer; "uring-break" closes the ring
  // under the backend. Returns "" for any other fault.
  std::string injectFault(const std::string& fault);

 private:
  struct Pending {
    Op op;
    uint64_t tag;
    const iovec* iov;
    unsigned iovCount;
    uint64_t offset;
    uint64_t length;
    bool unmap;
  };
  // The ring, released also when the constructor fails half-way.
  struct Ring {
    io_uring ring{};
    bool initialized = false;
    Ring() = default;
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
    ~Ring() {
      if (initialized) io_uring_queue_exit(&ring);
    }
  };
  void restrictRing();
  bool prepare(const Pending& operation);
  unsigned submitPrepared();

  UniqueFd fd_;
  UniqueFd eventFd_;
  Ring ring_;
  uint64_t sizeBytes_ = 0;
  bool readOnly_;
  bool punchForZeroes_ = false;      // Write zeroes as a hole: the filesystem has no zero-range.
  unsigned completionCapacity_ = 0;  // Entries in the completion ring.
  unsigned inKernel_ = 0;            // Submission entries taken whose completion is not reaped.
  std::deque<Pending> waiting_;      // Back-pressure: no room in the ring.
};

}  // namespace cellvisor
