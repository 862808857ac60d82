// Display device server (bhyve's fbuf): the Bochs display adapter and its
// VNC server in one sandboxed process. Started by its supervisor with the
// bootstrap socket on fd 3; VRAM, the VNC listening socket and everything
// else arrive over it.
#include <gcrypt.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <span>
#include <stdexcept>

#include "base/system-error.h"
#include "display-policy.h"
#include "servers/display/bochs-display.h"
#include "servers/display/display-options.h"
#include "servers/display/input-sender.h"
#include "servers/display/vnc-server.h"
#include "servers/runtime/serve-device.h"

namespace cellvisor {
namespace {

// How often VRAM is compared and clients served: 30 looks a second.
constexpr long FRAME_NANOSECONDS = 1'000'000'000 / 30;

UniqueFd frameTimer() {
  UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer) throwSystemError("timerfd_create");
  itimerspec every{{0, FRAME_NANOSECONDS}, {0, FRAME_NANOSECONDS}};
  checkSyscall(::timerfd_settime(timer.get(), 0, &every, nullptr), "timerfd_settime");
  return timer;
}

}  // namespace
}  // namespace cellvisor

int main() {
  using namespace cellvisor;
  return serveDevice(
      "fbuf", "display.policy", policies::DISPLAY_POLICY,
      [](ServerResources& resources, SandboxedServe& serve) {
        DisplayOptions options = parseDisplayOptions(resources.options);
        // libvncserver asks for local time here and there: a time zone given
        // outright, so glibc never opens its file (the sandbox would not let it).
        ::setenv("TZ", "UTC", 1);
        ::tzset();
        // libvncserver checks VNC passwords with libgcrypt's DES: the library
        // set up now (its first use reads /proc and logs to syslog otherwise).
        ::gcry_check_version(nullptr);
        ::gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
        ::gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
        // Handed over in the launcher's order: the VNC socket, then the ROM.
        if (resources.backends.empty() || resources.backends.size() > 2)
          throw std::runtime_error("expected the VNC listening socket and at most an option ROM");
        UniqueFd rom = resources.backends.size() == 2 ? std::move(resources.backends[1]) : UniqueFd();
        BochsDisplay display(
            resources, options.vramBytes(), std::move(rom),
            options.edid ? std::optional(makeEdid(options.width, options.height)) : std::nullopt);
        std::optional<InputSender> input;
        if (resources.input && resources.inputDoorbell) {
          auto keysDown = std::span<uint8_t, InputSender::KEYS_DOWN_BYTES>(display.keysDown());
          input.emplace(*resources.input, resources.inputDoorbell.get(), keysDown);
          if (resources.pointer && resources.pointerDoorbell)
            input->sendPointerTo(*resources.pointer, resources.pointerDoorbell.get());
          // Keys a killed predecessor's clients held are up now.
          input->releaseAllKeys();
        }
        VncServer vnc(options, std::move(resources.backends[0]), "fbuf:" + resources.deviceName,
                      input ? &*input : nullptr);
        DeviceServer server("fbuf:" + resources.deviceName, resources, display);
        UniqueFd timer = frameTimer();
        server.watch(vnc.listenerFd(), [&] {
          // A client is coming: the picture it gets first is the current one.
          vnc.show(display.scanout(), display.vram());
          vnc.service();
        });
        server.watch(timer.get(), [&] {
          uint64_t expirations;
          [[maybe_unused]] ssize_t got = ::read(timer.get(), &expirations, sizeof(expirations));
          if (vnc.clients() > 0) vnc.show(display.scanout(), display.vram());
          vnc.service();
        });
        return serve(server);
      });
}
