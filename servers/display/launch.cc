// The framebuffer's launch descriptor (bhyve's `fbuf`): the spawner checks
// the options, makes the VRAM (the supervisor's memfd, which outlives every
// server instance: the picture survives a crash) and opens the VNC port, so
// the server needs no right to bind or listen and a restarted one keeps it.
#include <sys/stat.h>

#include <stdexcept>
#include <string>

#include "display-policy.h"
#include "host/server-kind.h"
#include "servers/display/display-options.h"

namespace cellvisor {
namespace {

PreparedServer prepare(const LaunchContext& context) {
  DisplayOptions options;
  try {
    options = parseDisplayOptions(context.options);
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(context.where + ": " + error.what());
  }
  PreparedServer prepared;
  prepared.options = context.options;
  prepared.backends.push_back(openVncListener(options, context.where + ": VNC"));
  prepared.backendName = options.address + ":" + std::to_string(options.port);
  prepared.doorbells = 0;
  prepared.vectors = 0;         // No interrupts: the display only answers.
  prepared.inputSource = true;  // Its clients' keys and pointer go to the core's PS/2 pair.
  prepared.barMemoryBytes = options.vramBytes();
  // The option ROM's bytes go after VRAM: the ROM BAR is a memory slot too.
  if (UniqueFd rom = openDisplayRom(options, context.where)) {
    struct stat st {};
    ::fstat(rom.get(), &st);
    prepared.barMemoryBytes += romWindowBytes(static_cast<uint64_t>(st.st_size));
    prepared.backends.push_back(std::move(rom));
  }
  return prepared;
}

const ServerKindRegistration registration{ServerKind{
    .emulation = "fbuf",
    .binary = "display-server",
    .folder = "display",
    .policyName = "display.policy",
    .policyText = policies::DISPLAY_POLICY,
    .prepare = prepare,
    .holdsVcpusForClient = [](const std::string& options) { return parseDisplayOptions(options).wait; },
}};

}  // namespace
}  // namespace cellvisor
