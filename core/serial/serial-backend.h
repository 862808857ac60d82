// Where a UART's bytes go and come from, chosen by the bhyve-style -l spec:
//   stdio          the core's stdin/stdout (raw mode when it is a terminal)
//   pty            a new pseudo-terminal; its path is printed on stderr
//   /dev/nmdmNA    bhyve's null-modem console: a pty whose other side is
//                  reachable as /dev/nmdmNB (a symlink) while the VM runs
//   unix=PATH      a listening unix socket; one client at a time
//   listening-fd=N the same on a socket its starter made (vmmd: the console
//                  can be connected to as soon as `vmctl start` returns)
//   file=PATH      an append-only log (no input)
//   /dev/...       an existing terminal device
// Output is written synchronously from the vCPU thread; input is read on the
// core's I/O loop and offered to the UART with back-pressure, never dropped.
#pragma once

#include <uv.h>

#include <memory>
#include <optional>
#include <string>

#include "base/unique-fd.h"
#include "core/platform/uart16550.h"

namespace cellvisor {

class SerialBackend : public SerialOutput {
 public:
  // Starts feeding `uart` from this backend's input on `loop` (loop thread).
  virtual void startInput(uv_loop_t* loop, Uart16550& uart) = 0;
  // Human-readable endpoint, e.g. the pty path.
  virtual std::string endpoint() const = 0;

  // What this backend does as it goes that a confined core may not (its
  // sandbox has no paths and no terminal ioctls): remove a name it made,
  // give a pty's reader the last output before the hang-up, restore a
  // terminal's mode. The supervisor that outlives the core does it instead
  // (finishHandover) once the backend is told handedOver().
  struct Handover {
    std::string path;          // A socket's path or a null-modem link, to remove ...
    std::string linkTarget;    // ... a link only while it still leads here ("" for a socket).
    int terminal = -1;         // A pty master to drain (the supervisor gets a copy) ...
    std::string terminalPath;  // ... whose slave this is.
  };
  virtual std::optional<Handover> handover() const { return std::nullopt; }
  virtual void handedOver() {}
};

// Does what a handed-over backend left (see Handover); `terminal` is the
// supervisor's copy of the pty master, closed here.
void finishHandover(const SerialBackend::Handover& handover, UniqueFd terminal);

// Throws std::invalid_argument for a malformed spec, std::system_error if
// the endpoint cannot be opened.
std::unique_ptr<SerialBackend> openSerialBackend(const std::string& spec);

}  // namespace cellvisor
