#include "servers/runtime/disk-image.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <stdexcept>

#include "base/system-error.h"

namespace cellvisor {

uint64_t diskImageBytes(int fd, const std::string& name) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throwSystemError(name + ": fstat");
  uint64_t bytes = 0;
  if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) throwSystemError(name + ": BLKGETSIZE64");
  } else if (S_ISREG(st.st_mode)) {
    bytes = static_cast<uint64_t>(st.st_size);
  } else {
    throw std::invalid_argument(name + ": not a regular file or block device");
  }
  // A guest sees a disk of no sectors, and files such as /proc/self/mem
  // report size 0 whatever reading them would give.
  if (bytes == 0) throw std::invalid_argument(name + ": the disk image is empty (0 bytes)");
  return bytes;
}

UniqueFd openDiskImage(const std::string& path, int flags, const std::string& name) {
  UniqueFd fd(::open(path.c_str(), flags | O_NONBLOCK | O_CLOEXEC));
  if (!fd) throwSystemError(name);
  diskImageBytes(fd.get(), name);
  // Non-blocking was only for the open; I/O on the image blocks (in io_uring's workers).
  if (!(flags & O_NONBLOCK)) {
    int status = ::fcntl(fd.get(), F_GETFL);
    if (status < 0 || ::fcntl(fd.get(), F_SETFL, status & ~O_NONBLOCK) != 0)
      throwSystemError(name + ": fcntl");
  }
  return fd;
}

}  // namespace cellvisor
