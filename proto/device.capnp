@0xcdc5af18cc6952a5;
# The device protocol between the VM core (or a test harness standing in for
# it) and one device server. Messages travel framed as standard Cap'n Proto
# messages over a pair of shared-memory rings (see servers/runtime/ring.h):
# the core writes a Request, the server answers each with one Reply, in order.
# Only the slow path crosses this protocol: guest doorbells go straight to the
# server through ioeventfds, and interrupts straight to the guest through
# irqfds.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("cellvisor::proto");

# 2: the ring segment carries the request ledger (exactly-once register
# accesses across server instances).
# 3: the state segment starts with a generic header; BARs may be backed by
# shared memory; doorbells may start off and be switched by the server.
const protocolVersion :UInt32 = 3;

# Everything a server is handed at start, sent once over its bootstrap
# socket together with the file descriptors (SCM_RIGHTS) in the order listed
# in `fds`.
struct Bootstrap {
  protocolVersion @0 :UInt32;
  deviceName @1 :Text;          # e.g. "disk0"
  options @2 :Text;             # the device's option string, e.g. "ro,sectorsize=4096"
  ramRegions @3 :List(RamRegion);
  queueCount @4 :UInt16;        # doorbell eventfds that follow
  vectorCount @5 :UInt16;       # irqfd eventfds that follow
  fds @6 :List(FdRole);
  restart @7 :Bool;             # true: rebuild from the state segment
  sandbox @8 :Text;             # "off", "log" or "enforce" (the default)
  faultInjection @9 :Text;      # tests only: a forbidden call to make on ping
}

struct RamRegion {
  guestPhysical @0 :UInt64;
  size @1 :UInt64;
  memfdOffset @2 :UInt64;
}

enum FdRole {
  guestMemory @0;
  ringSegment @1;      # requests and replies
  stateSegment @2;     # what survives a server restart
  requestDoorbell @3;  # core -> server: a request is in the ring
  replyDoorbell @4;    # server -> core: a reply is in the ring
  queueDoorbell @5;    # one per virtqueue, in queue order
  interrupt @6;        # one per MSI-X vector, in vector order
  backend @7;          # disk image, tap device...
  barMemory @8;        # a memfd the core maps as BAR contents (framebuffer VRAM, NVMe CMB)
  inputSegment @9;     # the input link's ring (proto/input-segment.h): a display's clients -> the core or a tablet
  inputDoorbell @10;   # the input link's pipe: its write end to the display server, its read end to the core
                       # (a tablet's server reads a link of its own: it gets the read end)
  pointerSegment @11;  # a display's second link, to a tablet's server (the pointer goes there, not to the core)
  pointerDoorbell @12; # that link's pipe: its write end (the display's)
}

struct PciBar {
  index @0 :UInt8;
  size @1 :UInt64;
  kind @2 :Kind;
  prefetchable @3 :Bool;
  # Where the BAR's contents live: registers the server answers (the
  # default), or guest memory the core maps straight from the device's
  # barMemory fd at this offset (a KVM memory slot: guest accesses never
  # exit, and the contents survive a server restart).
  backing :union {
    registers @4 :Void;
    sharedMemory @5 :UInt64;
  }
  enum Kind {
    io @0;
    memory32 @1;
    memory64 @2;
  }
}

# A region of a BAR whose writes the core turns into an ioeventfd.
struct Doorbell {
  bar @0 :UInt8;
  offset @1 :UInt64;
  length @2 :UInt8;     # 0: any access size
  queue @3 :UInt16;     # which queue doorbell eventfd
  startsOff @4 :Bool;   # not an ioeventfd until the server turns it on (WriteEffects)
}

# The server turns a doorbell's ioeventfd on or off (e.g. NVMe: once the
# driver gives it shadow doorbells, the values no longer need an exit).
struct DoorbellSwitch {
  queue @0 :UInt16;     # as in Doorbell
  on @1 :Bool;
}

struct MsixVector {
  index @0 :UInt16;
  address @1 :UInt64;
  data @2 :UInt32;
}

struct Request {
  # Echoed in the reply, so the core can tell a stale reply (from a server
  # that died before answering) from the one it is waiting for.
  sequence @10 :UInt64;
  union {
    hello @0 :HelloRequest;
    configRead @1 :ConfigAccess;
    configWrite @2 :ConfigAccess;
    barRead @3 :BarAccess;
    barWrite @4 :BarAccess;
    reset @5 :Void;
    pause @6 :Void;
    resume @7 :Void;
    stats @8 :Void;
    ping @9 :UInt64;
  }
}

struct HelloRequest {
  coreProtocolVersion @0 :UInt32;
}

struct ConfigAccess {
  offset @0 :UInt16;
  size @1 :UInt8;
  value @2 :UInt32;    # writes only
}

struct BarAccess {
  bar @0 :UInt8;
  offset @1 :UInt64;
  size @2 :UInt8;
  value @3 :UInt64;    # writes only
}

struct Reply {
  sequence @6 :UInt64;
  union {
    hello @0 :HelloReply;
    value @1 :UInt64;            # configRead, barRead
    done @2 :WriteEffects;       # configWrite, barWrite, reset, pause, resume
    stats @3 :Stats;
    pong @4 :UInt64;
    error @5 :Text;              # the request could not be served
  }
}

struct HelloReply {
  serverProtocolVersion @0 :UInt32;
  serverName @1 :Text;
  bars @2 :List(PciBar);
  doorbells @3 :List(Doorbell);
  msixVectors @4 :UInt16;
}

# What the core must do after a write: reprogram interrupt routes when the
# guest changed an MSI-X table entry.
struct WriteEffects {
  msixUpdates @0 :List(MsixVector);
  doorbellSwitches @1 :List(DoorbellSwitch);
}

struct Stats {
  requests @0 :UInt64;
  readBytes @1 :UInt64;
  writtenBytes @2 :UInt64;
  errors @3 :UInt64;
  interrupts @4 :UInt64;
}

# One event on an input link, from a display server's VNC clients to the
# device that owns the guest's keyboard and pointer (the core's PS/2 pair).
struct InputEvent {
  union {
    key :group {
      down @0 :Bool;
      # The key's AT set-1 make code; 0xe000 + code for keys a keyboard
      # prefixes with 0xE0; 0xe11d for Pause (proto/input-keys.h).
      code @1 :UInt16;
    }
    pointer :group {
      buttons @2 :UInt8;   # RFB's mask: 1 left, 2 middle, 4 right, 8/16 wheel up/down
      x @3 :UInt16;        # in the desktop the client sees
      y @4 :UInt16;
      width @5 :UInt16;    # that desktop's size (an absolute device scales by it)
      height @6 :UInt16;
    }
    clientConnected @7 :Void;   # a client was let in (what fbuf's `wait` waits for)
  }
}
