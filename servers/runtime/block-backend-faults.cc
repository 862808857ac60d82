// BlockBackend's test-only faults: what a compromised server would try
// through its io_uring, and a ring that fails. Kept apart from the data path.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "servers/runtime/block-backend.h"

namespace cellvisor {
namespace {

constexpr uint64_t FAULT_TAG = ~0ull;

}  // namespace

std::string BlockBackend::injectFault(const std::string& fault) {
  io_uring& ring = ring_.ring;
  if (fault == "uring-break") {
    ::close(ring.ring_fd);
    ring.ring_fd = -1;  // Every later io_uring_enter fails with EBADF.
    return "io_uring ring closed";
  }
  bool openat = fault == "uring-openat";
  if (!openat && fault != "uring-socket") return "";
  // Its completion must not be mistaken for the data path's.
  if (outstanding() != 0) return "backend busy";
  const char* what = openat ? "IORING_OP_OPENAT /cellvisor-absent" : "IORING_OP_SOCKET AF_INET";
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  if (sqe == nullptr) return "no free submission entry";
  if (openat) {
    io_uring_prep_openat(sqe, AT_FDCWD, "/cellvisor-absent", O_RDONLY | O_CLOEXEC, 0);
  } else {
    io_uring_prep_socket(sqe, AF_INET, SOCK_STREAM, 0, 0);
  }
  io_uring_sqe_set_data64(sqe, FAULT_TAG);
  io_uring_cqe* cqe = nullptr;
  if (io_uring_submit(&ring) != 1 || io_uring_wait_cqe(&ring, &cqe) != 0)
    return std::string(what) + ": the ring failed";
  int result = cqe->res;
  io_uring_cqe_seen(&ring, cqe);
  if (result >= 0) {
    ::close(result);
    return std::string(what) + ": allowed (fd " + std::to_string(result) + ")";
  }
  // -EACCES: refused by the ring's restrictions. Anything else means the
  // kernel ran the operation (an absent path gives -ENOENT).
  return std::string(what) + ": " + std::to_string(result) + " (" + std::strerror(-result) + ")";
}

}  // namespace cellvisor
