@0x98f2d5e84a3a1c7c;
# The core's command channel: vmmd (or any supervisor) and one vmm-core,
# over the core's status socket (--status-fd), as standard Cap'n Proto
# messages. It is apart from the vmctl API (control.capnp): a core never
# links that schema, and the API can change without touching the core.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("cellvisor::proto");

# vmmd -> vmm-core, over the core's status socket (--status-fd). vmmd runs
# the device servers; the core owns their request channels, so quiescing a
# server before a live upgrade goes through the core.
struct CoreCommand {
  id @2 :UInt64;              # echoed in the answer
  union {
    quiesceDevice @0 :Text;   # device name: finish what is in flight, take nothing new
    resumeDevice @1 :Text;    # go on after all (an upgrade that was called off)
  }
}

# vmm-core -> vmmd, over the same socket: the answer to each CoreCommand,
# carrying its id (an answer to a command vmmd stopped waiting for is
# recognised as such, never taken for the next one's).
struct CoreEvent {
  device @0 :Text;
  error @1 :Text;    # empty: done
  id @2 :UInt64;
}

# vmm-core -> its supervisor, over the device socket (--device-socket), once,
# as the core confines itself: what its console backends do as they go
# that a confined core may not, for the supervisor to do once the core has
# ended. The pty masters to drain travel with it (SCM_RIGHTS), in order.
struct CoreHandover {
  consoles @0 :List(ConsoleHandover);
}

struct ConsoleHandover {
  path @0 :Text;          # a socket's path or a null-modem link, to remove
  linkTarget @1 :Text;    # a link only while it still leads here ("": a socket)
  terminalPath @2 :Text;  # a pty's slave, whose master came along; "": none
}
