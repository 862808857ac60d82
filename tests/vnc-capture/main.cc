// vnc-capture: a VNC client (libvncclient, not ours) that connects, takes
// the framebuffer as the server sends it, and writes the picture as a PPM
// once it has held still for a while: what the display tests compare
// against what the guest drew, pixel for pixel.
//
//   vnc-capture [--password P] [--encodings "zrle ..."] [--expect WxH] [--settle-ms N]
//               [--hold-ms N] [--timeout-ms N] [--key KEYSYM[/SCANCODE]]... [--key-down KEYSYM[/SCANCODE]]...
//               [--pointer X,Y,MASK]... [--pace-ms N] HOST:PORT OUT.ppm
//
// --hold-ms: for a screen that never holds still (a blinking cursor), the
// picture N ms after the first one, however busy.
// --key: once the first picture is in, press and release the key: as a
// QEMU extended key event carrying SCANCODE (QEMU's numbering: set 1, 0x80
// added for E0 keys) when given and the server offers the extension, else
// as the keysym. --key-down presses the key and leaves it down (the server
// must let it go when the client leaves). --pointer moves the pointer with RFB's button MASK. Input
// goes in the order given, --pace-ms apart (default 50); the picture is
// taken after the last.
//
// Only lossless encodings are asked for (tight without JPEG), so the
// picture is the server's exactly.
//
// Exit status: 0 written, 1 no connection (refused, bad password: the
// library's reason on stderr), 2 the picture did not settle in time, 3 the
// server closed the connection first, 4 the file could not be written; the
// reason on stderr. Every path frees what the library
// left us: in the AddressSanitizer build a leak found at exit turns the
// status into 1, which would read as "no connection".
#include <rfb/rfbclient.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string password;
std::string encodings = "zrle tight zlib hextile copyrect raw";
int expectWidth = 0, expectHeight = 0;
int holdMs = -1;
std::chrono::steady_clock::time_point firstUpdate;
std::chrono::steady_clock::time_point lastUpdate;
bool updated = false;

struct Action {
  bool key;
  bool release;
  uint32_t keysym, scancode;
  int x, y, mask;
};
std::vector<Action> actions;

char* givePassword(rfbClient*) {
  return strdup(password.c_str());
}

void finishedUpdate(rfbClient*) {
  lastUpdate = std::chrono::steady_clock::now();
  if (!updated) firstUpdate = lastUpdate;
  updated = true;
}

// rfbClientCleanup leaves the framebuffer (the library's own malloc) to us.
void release(rfbClient* client) {
  std::free(client->frameBuffer);
  client->frameBuffer = nullptr;
  rfbClientCleanup(client);
}

bool writePpm(rfbClient* client, const char* path) {
  std::ofstream out(path, std::ios::binary);
  out << "P6\n" << client->width << ' ' << client->height << "\n255\n";
  // The client's own format (rfbGetClient(8, 3, 4)): bytes R, G, B, unused.
  for (int i = 0; i < client->width * client->height; ++i)
    out.write(reinterpret_cast<char*>(client->frameBuffer) + 4 * i, 3);
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  int settleMs = 300, timeoutMs = 10000, paceMs = 50;
  int at = 1;
  for (; at + 1 < argc && std::strncmp(argv[at], "--", 2) == 0; at += 2) {
    std::string flag = argv[at];
    if (flag == "--password") {
      password = argv[at + 1];
    } else if (flag == "--encodings") {
      encodings = argv[at + 1];
    } else if (flag == "--expect") {
      std::sscanf(argv[at + 1], "%dx%d", &expectWidth, &expectHeight);
    } else if (flag == "--settle-ms") {
      settleMs = std::atoi(argv[at + 1]);
    } else if (flag == "--hold-ms") {
      holdMs = std::atoi(argv[at + 1]);
    } else if (flag == "--timeout-ms") {
      timeoutMs = std::atoi(argv[at + 1]);
    } else if (flag == "--pace-ms") {
      paceMs = std::atoi(argv[at + 1]);
    } else if (flag == "--key" || flag == "--key-down") {
      Action key{true, flag == "--key", 0, 0, 0, 0, 0};
      char* end = nullptr;
      key.keysym = static_cast<uint32_t>(std::strtoul(argv[at + 1], &end, 0));
      if (*end == '/') key.scancode = static_cast<uint32_t>(std::strtoul(end + 1, &end, 0));
      actions.push_back(key);
    } else if (flag == "--pointer") {
      Action pointer{false, false, 0, 0, 0, 0, 0};
      if (std::sscanf(argv[at + 1], "%d,%d,%d", &pointer.x, &pointer.y, &pointer.mask) != 3) {
        std::fprintf(stderr, "vnc-capture: --pointer X,Y,MASK\n");
        return 64;
      }
      actions.push_back(pointer);
    } else {
      std::fprintf(stderr, "vnc-capture: unknown option %s\n", flag.c_str());
      return 64;
    }
  }
  if (argc - at != 2) {
    std::fprintf(stderr,
                 "usage: vnc-capture [--password P] [--expect WxH] [--settle-ms N] HOST:PORT OUT.ppm\n");
    return 64;
  }
  std::string endpoint = argv[at];
  auto colon = endpoint.rfind(':');
  rfbClient* client = rfbGetClient(8, 3, 4);
  std::free(client->serverHost);  // rfbGetClient's own, replaced
  client->serverHost = strdup(endpoint.substr(0, colon).c_str());
  client->serverPort = std::atoi(endpoint.c_str() + colon + 1);
  client->GetPassword = givePassword;
  client->FinishedFrameBufferUpdate = finishedUpdate;
  client->canHandleNewFBSize = TRUE;
  client->appData.encodingsString = encodings.c_str();
  client->appData.enableJPEG = FALSE;
  // A server that accepts and then says nothing must not hang the test.
  ::signal(SIGALRM, [](int) {
    static const char said[] = "vnc-capture: timed out before a picture\n";
    [[maybe_unused]] ssize_t written = ::write(STDERR_FILENO, said, sizeof(said) - 1);
    ::_exit(2);
  });
  ::alarm(static_cast<unsigned>(timeoutMs / 1000 + 1));
  int fakeArgc = 1;
  char* fakeArgv[] = {argv[0], nullptr};
  if (!rfbInitClient(client, &fakeArgc, fakeArgv)) return 1;  // It freed the client.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  size_t sent = 0, asScancodes = 0;
  bool lost = false;
  while (std::chrono::steady_clock::now() < deadline) {
    // libvncclient reads ahead: whole messages can wait in its buffer with
    // nothing more to come on the socket (the server sends the next update
    // only when asked, and the client asks on handling this one).
    int ready = client->buffered > 0 ? 1 : WaitForMessage(client, 20000);
    if (ready < 0 || (ready > 0 && !HandleRFBServerMessage(client))) {
      lost = true;
      break;
    }
    // Scan codes wait (a second at most) for the server to offer them.
    bool scancodesReady = SupportsClient2Server(client, rfbQemuEvent) ||
                          std::chrono::steady_clock::now() - firstUpdate > std::chrono::seconds(1);
    if (updated && sent < actions.size() &&
        (!actions[sent].key || actions[sent].scancode == 0 || scancodesReady)) {
      const Action& action = actions[sent++];
      if (!action.key) {
        SendPointerEvent(client, action.x, action.y, action.mask);
      } else if (action.scancode != 0 && SendExtendedKeyEvent(client, action.keysym, action.scancode, TRUE)) {
        if (action.release) SendExtendedKeyEvent(client, action.keysym, action.scancode, FALSE);
        ++asScancodes;
      } else {
        SendKeyEvent(client, action.keysym, TRUE);
        if (action.release) SendKeyEvent(client, action.keysym, FALSE);
      }
      if (sent == actions.size()) {
        std::fprintf(stderr, "vnc-capture: sent %zu input events (%zu keys as scan codes)\n", sent,
                     asScancodes);
        lastUpdate = firstUpdate = std::chrono::steady_clock::now();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(paceMs));
      continue;
    }
    if (sent < actions.size()) continue;
    bool sizeRight = expectWidth == 0 || (client->width == expectWidth && client->height == expectHeight);
    auto now = std::chrono::steady_clock::now();
    bool settled = holdMs >= 0 ? now - firstUpdate > std::chrono::milliseconds(holdMs)
                               : now - lastUpdate > std::chrono::milliseconds(settleMs);
    if (updated && sizeRight && settled) {
      bool written = writePpm(client, argv[at + 1]);
      release(client);
      if (!written) std::fprintf(stderr, "vnc-capture: cannot write %s\n", argv[at + 1]);
      return written ? 0 : 4;
    }
  }
  if (lost) {
    std::fprintf(stderr, "vnc-capture: connection lost before a settled picture (%s)\n",
                 updated ? "after an update" : "no update came");
  } else {
    bool sizeRight = expectWidth == 0 || (client->width == expectWidth && client->height == expectHeight);
    std::fprintf(stderr, "vnc-capture: no settled %dx%d picture in %d ms (have %dx%d: %s)\n", expectWidth,
                 expectHeight, timeoutMs, client->width, client->height,
                 !updated     ? "no update came"
                 : !sizeRight ? "another size"
                              : "it kept changing");
  }
  release(client);
  return lost ? 3 : 2;
}
