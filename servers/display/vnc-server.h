// The display's VNC server: libvncserver in the display server's own
// process, on the listening socket the supervisor opened (a restarted
// server accepts on the same port; clients reconnect to it). RFB 3.3/3.7/
// 3.8, VNC password authentication, raw/hextile/zlib/tight/ZRLE,
// DesktopSize, any number of clients, and WebSocket on the same port (noVNC
// connects with no proxy). The picture comes from VRAM: what changed since
// the last look is found by comparing tiles against the copy clients were
// sent, and only those tiles are marked for sending. Keys and the pointer
// go to the guest through the input link (input-sender.h), as keysyms
// mapped to keys or, from clients that speak QEMU's extended key event
// (noVNC, libvncclient), as the scan codes the client read from its own
// keyboard; a client counts as connected for `wait` once it is past
// authentication.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/unique-fd.h"
#include "servers/display/bochs-display.h"
#include "servers/display/display-options.h"
#include "servers/display/input-sender.h"

typedef struct _rfbScreenInfo* rfbScreenInfoPtr;

namespace cellvisor {

class VncServer {
 public:
  // `input` may be null (no input link): clients then only watch.
  VncServer(const DisplayOptions& options, UniqueFd listener, const std::string& name, InputSender* input);
  ~VncServer();
  VncServer(const VncServer&) = delete;
  VncServer& operator=(const VncServer&) = delete;

  int listenerFd() const { return listener_.get(); }
  // Accepts connections and serves client messages that are waiting; sends
  // the updates clients asked for; announces clients that got in. Never
  // blocks.
  void service();
  size_t clients() const { return clients_; }
  // Shows `mode` of `vram` (black when the guest shows nothing): resizes
  // the desktop when the mode changed, marks what changed since last time.
  // Returns the number of tiles that changed.
  size_t show(const std::optional<Scanout>& mode, std::span<const uint8_t> vram);
  uint32_t width() const { return width_; }
  uint32_t height() const { return height_; }

 private:
  friend struct VncCallbacks;  // libvncserver's hooks (vnc-server.cc).
  void resize(uint32_t width, uint32_t height);
  // Announces clients that got in and answers those that asked for
  // extended key events, outside libvncserver's own sending.
  void serveInput();

  UniqueFd listener_;
  rfbScreenInfoPtr screen_ = nullptr;
  std::string password_;
  const char* passwords_[2] = {nullptr, nullptr};
  std::vector<uint32_t> shown_;  // What clients see: XRGB8888, width_ x height_.
  uint32_t width_ = 0, height_ = 0;
  std::optional<Scanout> mode_;
  bool blank_ = false;  // shown_ holds the no-mode picture.
  size_t clients_ = 0;
  InputSender* input_;
};

}  // namespace cellvisor
