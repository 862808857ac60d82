// Asynchronous block I/O on an image file or block device through io_uring.
// Shared by the block-type servers (virtio-blk, NVMe): they describe each
// operation with a tag and get the tag back with the result.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <span>

#include "core/base/unique-fd.h"

namespace cellvisor {

class BlockBackend {
 public:
  enum class Op { READ, WRITE, FLUSH, DISCARD, WRITE_ZEROES };

  // Takes the backend fd as opened by the spawner.
  BlockBackend(UniqueFd fd, unsigned depth, bool readOnly);
  ~BlockBackend();
  BlockBackend(const BlockBackend&) = delete;
  BlockBackend& operator=(const BlockBackend&) = delete;

  uint64_t sizeBytes() const { return sizeBytes_; }
  bool readOnly() const { return readOnly_; }
  // Signalled when completions are ready; watch it on the event loop.
  int completionFd() const { return eventFd_.get(); }

  // Queues an operation; `iov` must stay valid until its completion. Never
  // fails: when the submission ring is full the operation waits its turn.
  void submit(Op op, uint64_t tag, std::span<const iovec> iov, uint64_t offset, uint64_t length = 0,
              bool unmap = false);
  // Hands queued operations to the kernel.
  void flushSubmissions();
  // Blocks until at least one completion is ready.
  void waitForCompletion();
  // Calls `done(tag, result)` (result: bytes or -errno) for each completion.
  void reap(const std::function<void(uint64_t tag, int32_t result)>& done);

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
  bool prepare(const Pending& operation);

  UniqueFd fd_;
  UniqueFd eventFd_;
  io_uring ring_{};
  uint64_t sizeBytes_ = 0;
  bool readOnly_;
  std::deque<Pending> waiting_;  // Back-pressure: the SQ was full.
};

}  // namespace cellvisor
