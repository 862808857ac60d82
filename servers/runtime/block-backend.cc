#include "servers/runtime/block-backend.h"

#include <linux/falloc.h>
#include <linux/magic.h>
#include <sys/eventfd.h>
#include <sys/vfs.h>

#include <algorithm>
#include <cstring>

#include "base/system-error.h"
#include "servers/runtime/disk-image.h"

namespace cellvisor {
namespace {

constexpr int IMAGE = 0;  // The image's index among the ring's fixed files.

void check(int result, const char* what) {
  if (result < 0) throwSystemError(what, -result);
}

}  // namespace

BlockBackend::BlockBackend(UniqueFd fd, unsigned depth, bool readOnly)
    : fd_(std::move(fd)), readOnly_(readOnly) {
  sizeBytes_ = diskImageBytes(fd_.get(), "the backend fd");
  // tmpfs (and a memfd, which lives there) has no FALLOC_FL_ZERO_RANGE; a
  // punched hole reads as zeros there just the same.
  struct statfs filesystem {};
  punchForZeroes_ = ::fstatfs(fd_.get(), &filesystem) == 0 && filesystem.f_type == TMPFS_MAGIC;
  io_uring_params params{};
  // Disabled until restricted (below). The completion ring is twice the
  // submission ring; prepare() keeps it from ever overflowing.
  params.flags = IORING_SETUP_R_DISABLED | IORING_SETUP_CQSIZE;
  unsigned entries = std::clamp(depth, MIN_RING_ENTRIES, MAX_RING_ENTRIES);
  params.cq_entries = 2 * entries;
  check(io_uring_queue_init_params(entries, &ring_.ring, &params), "io_uring_queue_init");
  ring_.initialized = true;
  completionCapacity_ = params.cq_entries;  // As the kernel rounded it.
  int files[] = {fd_.get()};
  check(io_uring_register_files(&ring_.ring, files, 1), "io_uring_register_files");
  eventFd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!eventFd_) throwSystemError("eventfd");
  check(io_uring_register_eventfd(&ring_.ring, eventFd_.get()), "io_uring_register_eventfd");
  restrictRing();
  check(
      io_uring_register(static_cast<unsigned>(ring_.ring.ring_fd), IORING_REGISTER_ENABLE_RINGS, nullptr, 0),
      "io_uring enable rings");
}

void BlockBackend::restrictRing() {
  io_uring_restriction restrictions[5] = {};
  unsigned count = 0;
  for (uint8_t opcode : {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_FALLOCATE}) {
    restrictions[count].opcode = IORING_RESTRICTION_SQE_OP;
    restrictions[count++].sqe_op = opcode;
  }
  // Every entry on a registered file: no fd the server holds (guest RAM,
  // eventfds, sockets) can be named, let alone a path.
  restrictions[count].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
  restrictions[count++].sqe_flags = IOSQE_FIXED_FILE;
  // No IORING_RESTRICTION_REGISTER_OP: once enabled, the ring takes no
  // new registrations (files, buffers, eventfds) at all.
  // The raw register call: the liburing 2.3 of Debian 12 declares
  // io_uring_register_restrictions() and io_uring_enable_rings() but its
  // shared library does not export them.
  check(io_uring_register(static_cast<unsigned>(ring_.ring.ring_fd), IORING_REGISTER_RESTRICTIONS,
                          restrictions, count),
        "io_uring register restrictions");
}

void BlockBackend::submit(Op op, uint64_t tag, std::span<const iovec> iov, uint64_t offset, uint64_t length,
                          bool unmap) {
  Pending operation{op, tag, iov.data(), static_cast<unsigned>(iov.size()), offset, length, unmap};
  if (!waiting_.empty() || !prepare(operation)) waiting_.push_back(operation);
}

bool BlockBackend::prepare(const Pending& operation) {
  // Never more operations in the kernel than the completion ring holds: a
  // completion with no room would be held back by the kernel, and the
  // submit after it refused.
  if (inKernel_ >= completionCapacity_) return false;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_.ring);
  if (sqe == nullptr) return false;
  auto offset = static_cast<off_t>(operation.offset);
  auto length = static_cast<off_t>(operation.length);
  switch (operation.op) {
    case Op::READ:
      io_uring_prep_readv(sqe, IMAGE, operation.iov, operation.iovCount, operation.offset);
      break;
    case Op::WRITE:
      io_uring_prep_writev(sqe, IMAGE, operation.iov, operation.iovCount, operation.offset);
      break;
    case Op::FLUSH:
      io_uring_prep_fsync(sqe, IMAGE, IORING_FSYNC_DATASYNC);
      break;
    case Op::DISCARD:
      io_uring_prep_fallocate(sqe, IMAGE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
      break;
    case Op::WRITE_ZEROES:
      io_uring_prep_fallocate(
          sqe, IMAGE,
          (operation.unmap || punchForZeroes_ ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) |
              FALLOC_FL_KEEP_SIZE,
          offset, length);
      break;
  }
  io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
  io_uring_sqe_set_data64(sqe, operation.tag);
  ++inKernel_;
  return true;
}

unsigned BlockBackend::submitPrepared() {
  for (;;) {
    int result = io_uring_submit(&ring_.ring);
    if (result >= 0) return static_cast<unsigned>(result);
    if (result == -EINTR) continue;
    // The kernel is short of memory or its completions are backed up: the
    // entries stay in the ring and go with the next submit, which the next
    // completion brings about. With nothing in the kernel to complete, that
    // would be a silent hang: fail instead.
    bool completionsComing = inKernel_ > io_uring_sq_ready(&ring_.ring);
    if ((result == -EAGAIN || result == -EBUSY) && completionsComing) return 0;
    throwSystemError("io_uring_submit", -result);
  }
}

void BlockBackend::flushSubmissions() {
  for (;;) {
    while (!waiting_.empty() && prepare(waiting_.front())) waiting_.pop_front();
    unsigned submitted = submitPrepared();
    // Stopped by a full submission ring that the kernel has since emptied:
    // go on, up to what the completion ring can hold.
    if (waiting_.empty() || submitted == 0 || inKernel_ >= completionCapacity_) return;
  }
}

void BlockBackend::waitForCompletion() {
  flushSubmissions();
  if (inKernel_ == 0) return;  // Nothing would ever complete.
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    int result = io_uring_wait_cqe(&ring_.ring, &cqe);  // Leaves it queued for reap().
    if (result == 0) return;
    if (result != -EINTR) throwSystemError("io_uring_wait_cqe", -result);
  }
}

void BlockBackend::reap(const std::function<void(uint64_t, int32_t)>& done) {
  eventfd_t ignored;
  eventfd_read(eventFd_.get(), &ignored);  // Non-blocking: nothing to read is fine.
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(&ring_.ring, &cqe) != 0 || cqe == nullptr) break;
    uint64_t tag = io_uring_cqe_get_data64(cqe);
    int32_t result = cqe->res;
    io_uring_cqe_seen(&ring_.ring, cqe);
    --inKernel_;
    done(tag, result);
  }
  // Completions made room: hand over what was waiting.
  if (!waiting_.empty()) flushSubmissions();
}

}  // namespace cellvisor
