// What a disk image must be before anything serves it: a regular file or a
// block device, and not empty. Checked by the spawner, which opens the image
// (so the user hears about a bad one once, by its path, before a server
// starts), and again by the block backend, which trusts no spawner.
#pragma once

#include <cstdint>
#include <string>

#include "base/unique-fd.h"

namespace cellvisor {

// The size in bytes of the image open on `fd`. Throws std::invalid_argument
// "NAME: why" when it is no disk (a character device, a FIFO, a socket, a
// directory, an empty file such as /proc/self/mem).
uint64_t diskImageBytes(int fd, const std::string& name);

// Opens `path` with open(2) `flags` and checks it as above. Never blocks (a
// FIFO opened for reading would wait for a writer). Every error starts with
// `name` (how the user called the image, e.g. "-s 4:0,virtio-blk: disk.img");
// std::system_error when it cannot be opened.
UniqueFd openDiskImage(const std::string& path, int flags, const std::string& name);

}  // namespace cellvisor
