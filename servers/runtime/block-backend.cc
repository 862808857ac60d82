#include "servers/runtime/block-backend.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/eventfd.h>

#include <cstring>

#include "core/base/system-error.h"
#include "servers/runtime/disk-image.h"

namespace cellvisor {

BlockBackend::BlockBackend(UniqueFd fd, unsigned depth, bool readOnly)
    : fd_(std::move(fd)), readOnly_(readOnly) {
  sizeBytes_ = diskImageBytes(fd_.get(), "the backend fd");
  int result = io_uring_queue_init(depth, &ring_, 0);
  if (result < 0) throwSystemError("io_uring_queue_init", -result);
  eventFd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!eventFd_) throwSystemError("eventfd");
  result = io_uring_register_eventfd(&ring_, eventFd_.get());
  if (result < 0) throwSystemError("io_uring_register_eventfd", -result);
}

BlockBackend::~BlockBackend() {
  io_uring_queue_exit(&ring_);
}

void BlockBackend::submit(Op op, uint64_t tag, std::span<const iovec> iov, uint64_t offset, uint64_t length,
                          bool unmap) {
  Pending operation{op, tag, iov.data(), static_cast<unsigned>(iov.size()), offset, length, unmap};
  if (!waiting_.empty() || !prepare(operation)) waiting_.push_back(operation);
}

bool BlockBackend::prepare(const Pending& operation) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) return false;
  switch (operation.op) {
    case Op::READ:
      io_uring_prep_readv(sqe, fd_.get(), operation.iov, operation.iovCount, operation.offset);
      break;
    case Op::WRITE:
      io_uring_prep_writev(sqe, fd_.get(), operation.iov, operation.iovCount, operation.offset);
      break;
    case Op::FLUSH:
      io_uring_prep_fsync(sqe, fd_.get(), IORING_FSYNC_DATASYNC);
      break;
    case Op::DISCARD:
      io_uring_prep_fallocate(sqe, fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              static_cast<off_t>(operation.offset), static_cast<off_t>(operation.length));
      break;
    case Op::WRITE_ZEROES:
      io_uring_prep_fallocate(
          sqe, fd_.get(),
          (operation.unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE,
          static_cast<off_t>(operation.offset), static_cast<off_t>(operation.length));
      break;
  }
  io_uring_sqe_set_data64(sqe, operation.tag);
  return true;
}

void BlockBackend::flushSubmissions() {
  while (!waiting_.empty() && prepare(waiting_.front())) waiting_.pop_front();
  io_uring_submit(&ring_);
}

void BlockBackend::waitForCompletion() {
  flushSubmissions();
  io_uring_cqe* cqe = nullptr;
  io_uring_wait_cqe(&ring_, &cqe);  // Leaves it queued for reap().
}

void BlockBackend::reap(const std::function<void(uint64_t, int32_t)>& done) {
  eventfd_t ignored;
  eventfd_read(eventFd_.get(), &ignored);
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(&ring_, &cqe) != 0 || cqe == nullptr) break;
    uint64_t tag = io_uring_cqe_get_data64(cqe);
    int32_t result = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    done(tag, result);
  }
  // Completions freed submission slots: hand over what was waiting.
  if (!waiting_.empty()) flushSubmissions();
}

}  // namespace cellvisor
