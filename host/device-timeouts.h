// The waits of the core and its supervisor on a device server, in one place:
// they depend on each other, and the order below is what keeps a live
// upgrade from leaving a device paused or answering the wrong command.
#pragma once

#include <chrono>

namespace cellvisor {

// A register access waits this long for its server's reply, across a crash
// and restart of the server (the supervisor restarts a long-lived server at
// once; back-off for young deaths tops at 1 s per try).
constexpr std::chrono::milliseconds SERVER_REPLY_TIMEOUT{10'000};

// The core quiesces a server before a live upgrade for at most this long,
// counting the wait for a register access that holds the channel: then it
// answers vmmd that the server did not quiesce, and gives the pause up.
constexpr std::chrono::milliseconds QUIESCE_TIMEOUT{3'000};

// vmmd waits this long for the core's answer to a quiesce before it replaces
// the server anyway (a hung server is what an upgrade should replace). It is
// longer than the core's own limit, so the core has always answered, and
// given up its pause, before vmmd starts the successor: no pause meant for
// the old instance can reach the new one.
constexpr std::chrono::milliseconds UPGRADE_QUIESCE_DEADLINE = QUIESCE_TIMEOUT + std::chrono::seconds(2);

static_assert(UPGRADE_QUIESCE_DEADLINE > QUIESCE_TIMEOUT);
static_assert(QUIESCE_TIMEOUT < SERVER_REPLY_TIMEOUT);

}  // namespace cellvisor
