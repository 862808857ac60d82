#include "servers/display/vnc-server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <rfb/rfb.h>
#include <sys/socket.h>

#include <algorithm>
#include <bitset>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "proto/input-keys.h"
#include "servers/display/keysym-keys.h"

namespace cellvisor {
namespace {

// Compared and sent in tiles this size: small enough that a blinking cursor
// sends little, large enough that a full-screen change is few rectangles.
constexpr uint32_t TILE_WIDTH = 64;
constexpr uint32_t TILE_HEIGHT = 16;

uint32_t fromRgb565(uint16_t pixel) {
  uint32_t red = (pixel >> 11) & 0x1f, green = (pixel >> 5) & 0x3f, blue = pixel & 0x1f;
  return (red << 3 | red >> 2) << 16 | (green << 2 | green >> 4) << 8 | (blue << 3 | blue >> 2);
}

// libvncserver's errors, without its timestamps (those read the time zone
// file, which the sandbox does not allow).
void logError(const char* format, ...) {
  va_list arguments;
  va_start(arguments, format);
  std::fputs("fbuf: ", stderr);
  std::vfprintf(stderr, format, arguments);
  va_end(arguments);
}

// Of its chatter (a dozen lines per connection), what a VM's log wants:
// who came and who left.
void logConnections(const char* format, ...) {
  if (std::strncmp(format, "Got connection", 14) != 0 && std::strncmp(format, "Client %s gone", 14) != 0)
    return;
  va_list arguments;
  va_start(arguments, format);
  std::fputs("fbuf: ", stderr);
  std::vfprintf(stderr, format, arguments);
  va_end(arguments);
}

// QEMU's extended key event (a pseudo-encoding a client asks for, then
// message 255 subtype 0): the client sends the key's scan code with the
// keysym, so the guest's own layout applies.
constexpr int QEMU_EXTENDED_KEY_EVENT = -258;
constexpr int MAX_PASSES_PER_SERVICE = 64;
constexpr uint8_t QEMU_MESSAGE = 255;
constexpr size_t QEMU_KEY_MESSAGE_BYTES = 12;
// QEMU's key numbers put the 0xE0 prefix in bit 7; Pause is E0 46 there.
constexpr uint32_t QNUM_EXTENDED = 0x80;
using input::KEY_EXTENDED;
using input::KEY_PAUSE;

uint32_t bigEndian32(const uint8_t* at) {
  return uint32_t{at[0]} << 24 | uint32_t{at[1]} << 16 | uint32_t{at[2]} << 8 | at[3];
}

}  // namespace

// What we keep per client: whether it was announced on the input link, and
// where its extended key events stand.
struct VncClientState {
  bool announced = false;
  std::bitset<256> keysDown;  // Let go when the client leaves (InputSender::bitOf).
  // Asked for, and the answer due. The answer waits until libvncserver has
  // sent the client its own list of supported messages (in an update, not
  // always the first): libvncclient takes that list for the whole truth,
  // so an answer sent before it would be forgotten.
  bool extendedKeysAsked = false;
  bool extendedKeysDue = false;
  bool extendedKeysAnswered = false;
};

struct VncCallbacks {
  static VncServer& server(rfbClientPtr client) {
    return *static_cast<VncServer*>(client->screen->screenData);
  }

  static enum rfbNewClientAction arrived(rfbClientPtr client) {
    ++server(client).clients_;
    client->clientData = new VncClientState;
    client->clientGoneHook = gone;
    return RFB_CLIENT_ACCEPT;
  }

  static void gone(rfbClientPtr client) {
    VncServer& self = server(client);
    --self.clients_;
    auto* state = static_cast<VncClientState*>(client->clientData);
    client->clientData = nullptr;
    // Keys it held would stay down in the guest for ever; other clients'
    // stay as they are.
    for (int bit = 0; state != nullptr && self.input_ != nullptr && bit < 256; ++bit) {
      if (state->keysDown[bit]) self.input_->key(InputSender::keyOfBit(bit), false);
    }
    delete state;
  }

  static void press(rfbClientPtr client, uint16_t key, bool down) {
    VncServer& self = server(client);
    auto* state = static_cast<VncClientState*>(client->clientData);
    if (self.input_ == nullptr || !self.input_->key(key, down) || state == nullptr) return;
    if (int bit = InputSender::bitOf(key); bit >= 0) state->keysDown[bit] = down;
  }

  static void keysym(rfbBool down, rfbKeySym keysym, rfbClientPtr client) {
    if (uint16_t key = keyForKeysym(keysym)) press(client, key, down != 0);
  }

  static void pointer(int buttons, int x, int y, rfbClientPtr client) {
    VncServer& self = server(client);
    if (self.input_ == nullptr || x < 0 || y < 0) return;
    self.input_->pointer(static_cast<uint8_t>(buttons), static_cast<uint16_t>(x), static_cast<uint16_t>(y),
                         static_cast<uint16_t>(self.width_), static_cast<uint16_t>(self.height_));
  }

  // The client asked for extended key events: yes, said after its first
  // picture (VncClientState).
  static rfbBool enableExtendedKeys(rfbClientPtr client, void**, int encoding) {
    auto* state = static_cast<VncClientState*>(client->clientData);
    if (encoding != QEMU_EXTENDED_KEY_EVENT || server(client).input_ == nullptr || state == nullptr)
      return FALSE;
    // Asked again (each SetEncodings asks anew, and may come with a new
    // list of supported messages): answered again.
    state->extendedKeysAsked = true;
    state->extendedKeysAnswered = false;
    state->extendedKeysDue = false;
    return TRUE;
  }

  static void pictureSent(rfbClientPtr client, int) {
    auto* state = static_cast<VncClientState*>(client->clientData);
    if (state == nullptr || !state->extendedKeysAsked || state->extendedKeysAnswered) return;
    if (!client->enableSupportedMessages) state->extendedKeysDue = true;  // The list went out, or never will.
  }

  // The pseudo-rectangle QEMU answers with (noVNC starts sending extended
  // key events on it, libvncclient too). Empty, at 0,0: written outside
  // libvncserver's updates, it may overtake a DesktopSize still queued, and
  // a client checks every rectangle against the size it knows.
  static void answerExtendedKeys(rfbClientPtr client) {
    uint8_t message[16] = {0 /* FramebufferUpdate */, 0, 0, 1 /* one rectangle */};
    auto encodingBits = static_cast<uint32_t>(QEMU_EXTENDED_KEY_EVENT);
    for (int i = 0; i < 4; ++i) message[12 + i] = static_cast<uint8_t>(encodingBits >> (24 - 8 * i));
    LOCK(client->sendMutex);
    int written = rfbWriteExact(client, reinterpret_cast<char*>(message), sizeof(message));
    UNLOCK(client->sendMutex);
    if (written < 0) rfbCloseClient(client);
  }

  static rfbBool extendedKey(rfbClientPtr client, void*, const rfbClientToServerMsg* received) {
    if (received->type != QEMU_MESSAGE) return FALSE;
    uint8_t message[QEMU_KEY_MESSAGE_BYTES] = {QEMU_MESSAGE};
    if (rfbReadExact(client, reinterpret_cast<char*>(message) + 1, sizeof(message) - 1) <= 0) {
      rfbCloseClient(client);
      return TRUE;
    }
    VncServer& self = server(client);
    uint8_t subtype = message[1];
    bool down = (message[2] << 8 | message[3]) != 0;
    uint32_t keysym = bigEndian32(message + 4);
    uint32_t keycode = bigEndian32(message + 8);
    if (subtype != 0) {
      // Another of QEMU's messages, of a length we do not know: the stream
      // cannot be followed past it.
      rfbCloseClient(client);
      return TRUE;
    }
    if (self.input_ == nullptr) return TRUE;
    if (keycode == 0 || keycode > 0xff) {
      // The client could not read a scan code: the keysym it sent with it.
      if (uint16_t key = keyForKeysym(keysym)) press(client, key, down);
      return TRUE;
    }
    uint16_t key = keycode & QNUM_EXTENDED ? static_cast<uint16_t>(KEY_EXTENDED | (keycode & 0x7f))
                                           : static_cast<uint16_t>(keycode);
    if (key == (KEY_EXTENDED | 0x46)) key = KEY_PAUSE;
    press(client, key, down);
    return TRUE;
  }
};

namespace {

int extendedKeyEncodings[] = {QEMU_EXTENDED_KEY_EVENT, 0};
rfbProtocolExtension extendedKeyExtension = {
    .newClient = nullptr,
    .init = nullptr,
    .pseudoEncodings = extendedKeyEncodings,
    .enablePseudoEncoding = VncCallbacks::enableExtendedKeys,
    .handleMessage = VncCallbacks::extendedKey,
    .close = nullptr,
    .usage = nullptr,
    .processArgument = nullptr,
    .next = nullptr,
};

}  // namespace

VncServer::VncServer(const DisplayOptions& options, UniqueFd listener, const std::string& name,
                     InputSender* input)
    : listener_(std::move(listener)), password_(options.password), input_(input) {
  rfbLog = logConnections;
  rfbErr = logError;
  int argc = 1;
  std::string program = name;
  char* argv[] = {program.data(), nullptr};
  width_ = options.width;
  height_ = options.height;
  shown_.assign(size_t{width_} * height_, 0);
  screen_ = rfbGetScreen(&argc, argv, static_cast<int>(width_), static_cast<int>(height_), 8, 3, 4);
  if (screen_ == nullptr) throw std::runtime_error("libvncserver: rfbGetScreen failed");
  // XRGB8888 little-endian, the layout of the guest's 32-bit modes: a
  // tile goes out as it is in VRAM.
  screen_->serverFormat.redShift = 16;
  screen_->serverFormat.greenShift = 8;
  screen_->serverFormat.blueShift = 0;
  screen_->frameBuffer = reinterpret_cast<char*>(shown_.data());
  // No cursor drawn into the picture: clients draw their own, and the
  // pixels sent stay the guest's.
  screen_->cursor = nullptr;
  screen_->desktopName = "cellvisor";
  screen_->alwaysShared = TRUE;  // Several clients at once.
  screen_->deferUpdateTime = 0;  // Pacing is ours (the display server's timer).
  screen_->screenData = this;
  screen_->newClientHook = VncCallbacks::arrived;
  screen_->kbdAddEvent = VncCallbacks::keysym;
  screen_->ptrAddEvent = VncCallbacks::pointer;
  screen_->displayFinishedHook = VncCallbacks::pictureSent;
  rfbRegisterProtocolExtension(&extendedKeyExtension);  // Once per process; a second call is a no-op.
  if (!password_.empty()) {
    passwords_[0] = password_.c_str();
    screen_->authPasswdData = passwords_;
    screen_->passwordCheck = rfbCheckPasswordByList;
  }
  // No listening of its own: the supervisor's socket, on any family.
  screen_->autoPort = FALSE;
  screen_->port = 0;
  screen_->ipv6port = 0;
  screen_->httpPort = 0;
  screen_->http6Port = 0;
  rfbInitServer(screen_);
  screen_->listenSock = listener_.get();
  // Where clients find it (the port the launcher bound, which may have been
  // chosen by the kernel).
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&bound), &length) == 0) {
    if (bound.ss_family == AF_INET6) {
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&bound);
      ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
      port = ntohs(v6->sin6_port);
    } else {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&bound);
      ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
      port = ntohs(v4->sin_port);
    }
  }
  std::fprintf(stderr, "%s: VNC server on %s port %u%s\n", name.c_str(), host, port,
               password_.empty() ? "" : " (password)");
  FD_SET(screen_->listenSock, &screen_->allFds);
  screen_->maxFd = std::max(screen_->maxFd, screen_->listenSock);
}

VncServer::~VncServer() {
  if (screen_ == nullptr) return;
  screen_->listenSock = RFB_INVALID_SOCKET;  // Ours: it outlives the server (a successor takes it).
  rfbShutdownServer(screen_, TRUE);
  rfbScreenCleanup(screen_);
}

void VncServer::service() {
  // libvncserver reads one message per client per pass: passes while any
  // client had one (bounded), so that pointer moves do not queue up at 30 a
  // second; then one more that also sends the updates asked for.
  for (int pass = 0; pass < MAX_PASSES_PER_SERVICE && rfbCheckFds(screen_, 0) > 0; ++pass) {
  }
  rfbProcessEvents(screen_, 0);
  serveInput();
}

void VncServer::serveInput() {
  if (input_ == nullptr || clients_ == 0) return;
  rfbClientIteratorPtr clients = rfbGetClientIterator(screen_);
  while (rfbClientPtr client = rfbClientIteratorNext(clients)) {
    auto* state = static_cast<VncClientState*>(client->clientData);
    if (state == nullptr) continue;
    if (state->extendedKeysDue) {
      state->extendedKeysDue = false;
      state->extendedKeysAnswered = true;
      VncCallbacks::answerExtendedKeys(client);
    }
    // Past authentication and ClientInit: a client the guest may wait for.
    if (state->announced || client->state != rfbClientRec::RFB_NORMAL) continue;
    state->announced = input_->clientConnected();  // Not written: said again next time.
  }
  rfbReleaseClientIterator(clients);
}

void VncServer::resize(uint32_t width, uint32_t height) {
  width_ = width;
  height_ = height;
  // A new buffer, then the switch: libvncserver sends DesktopSize (or, to a
  // client without it, the new picture) and forgets the old one.
  std::vector<uint32_t> resized(size_t{width} * height, 0);
  rfbNewFramebuffer(screen_, reinterpret_cast<char*>(resized.data()), static_cast<int>(width),
                    static_cast<int>(height), 8, 3, 4);
  screen_->serverFormat.redShift = 16;
  screen_->serverFormat.greenShift = 8;
  screen_->serverFormat.blueShift = 0;
  shown_ = std::move(resized);
}

size_t VncServer::show(const std::optional<Scanout>& mode, std::span<const uint8_t> vram) {
  if (mode && (mode->width != width_ || mode->height != height_)) resize(mode->width, mode->height);
  mode_ = mode;
  if (!mode) {
    if (blank_) return 0;
    std::fill(shown_.begin(), shown_.end(), 0);
    blank_ = true;
    rfbMarkRectAsModified(screen_, 0, 0, static_cast<int>(width_), static_cast<int>(height_));
    return 1;
  }
  blank_ = false;
  size_t changed = 0;
  std::vector<uint32_t> line(TILE_WIDTH);
  for (uint32_t top = 0; top < height_; top += TILE_HEIGHT) {
    uint32_t rows = std::min(TILE_HEIGHT, height_ - top);
    for (uint32_t left = 0; left < width_; left += TILE_WIDTH) {
      uint32_t columns = std::min(TILE_WIDTH, width_ - left);
      bool differs = false;
      for (uint32_t row = top; row < top + rows; ++row) {
        const uint8_t* source = vram.data() + mode->offset + uint64_t{row} * mode->stride;
        uint32_t* target = shown_.data() + size_t{row} * width_ + left;
        const uint32_t* pixels;
        if (mode->bitsPerPixel == 32) {
          pixels = reinterpret_cast<const uint32_t*>(source) + left;
        } else {
          const auto* packed = reinterpret_cast<const uint16_t*>(source) + left;
          for (uint32_t x = 0; x < columns; ++x) line[x] = fromRgb565(packed[x]);
          pixels = line.data();
        }
        if (std::memcmp(target, pixels, columns * 4) != 0) {
          std::memcpy(target, pixels, columns * 4);
          differs = true;
        }
      }
      if (differs) {
        ++changed;
        rfbMarkRectAsModified(screen_, static_cast<int>(left), static_cast<int>(top),
                              static_cast<int>(left + columns), static_cast<int>(top + rows));
      }
    }
  }
  return changed;
}

}  // namespace cellvisor
