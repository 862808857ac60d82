@0xa41c356c9a678ee1;
# The control API between vmctl (and other clients) and vmmd: Cap'n Proto RPC
# over vmmd's unix socket. Errors come back as exceptions whose description
# is the message to show the user.
# Also the commands vmmd sends a running vmm-core over its status socket.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("cellvisor::proto");

interface Vmmd {
  list @0 () -> (vms :List(VmSummary));
  info @1 (name :Text) -> (vm :VmSummary, config :Text);
  # `datastore`: empty for the default one.
  # Warnings: one line per template key accepted but not acted on.
  create @2 (name :Text, template :Text, cpus :Text, memory :Text, diskSize :Text, datastore :Text)
      -> (warnings :List(Text));
  start @3 (name :Text) -> ();
  # ACPI power button: the guest shuts itself down.
  stop @4 (name :Text) -> ();
  # Pulls the plug.
  poweroff @5 (name :Text) -> ();
  destroy @6 (name :Text, force :Bool) -> ();
  devices @7 (name :Text) -> (devices :List(DeviceStatus));
  # Stop (power button), wait, start again.
  restart @8 (name :Text) -> ();
  rename @9 (name :Text, newName :Text) -> ();
  clone @10 (name :Text, newName :Text) -> ();
  # Replaces NAME.conf after validating the new text (vmctl configure).
  configure @11 (name :Text, config :Text) -> ();
  # Adds a new virtio-blk disk of `size` (vmctl add -d).
  addDisk @12 (name :Text, size :Text, type :Text) -> (disk :Text);  # type: "" = virtio-blk
  # Restarts one device server of a running VM through the crash-restart
  # path, optionally on a new binary: a live upgrade the guest does not see.
  restartDevice @13 (name :Text, device :Text, binary :Text) -> ();
  # Hard reset: power off and start again at once.
  reset @14 (name :Text) -> ();
  # Installs the shipped templates that the datastore does not have yet.
  init @15 () -> (installed :List(Text));

  # Install media in .iso/ and .img/ (kind "iso" or "img"), imported from
  # local files.
  media @16 (kind :Text) -> (files :List(MediaFile));
  importMedia @17 (kind :Text, path :Text) -> (name :Text);
  # Boots a stopped VM from a medium (a name in .iso/ or .img/, or an
  # absolute path): an ISO is attached read-only for this boot; a kernel
  # becomes the VM's kernel. `kind` says which it was.
  install @18 (name :Text, medium :Text) -> (kind :Text);

  datastores @19 () -> (datastores :List(DatastoreInfo));
  addDatastore @20 (name :Text, path :Text) -> ();
  removeDatastore @21 (name :Text) -> ();

  switches @22 () -> (switches :List(SwitchInfo));
  # type: "standard" (vmmd makes bridge vm-NAME) or "manual" (`bridge`
  # names an existing one). address: CIDR, optional. mtu: 0 for the default.
  createSwitch @23 (name :Text, type :Text, bridge :Text, address :Text, mtu :UInt32) -> ();
  addSwitchPort @24 (name :Text, port :Text) -> ();
  removeSwitchPort @25 (name :Text, port :Text) -> ();
  destroySwitch @26 (name :Text) -> ();
  # Adds a virtio-net NIC on switch `switch` (vmctl add -d network -s SWITCH).
  addNetwork @27 (name :Text, switch :Text) -> (network :Text);
}

struct MediaFile {
  name @0 :Text;
  size @1 :UInt64;
}

struct DatastoreInfo {
  name @0 :Text;
  path @1 :Text;
  vms @2 :UInt32;
}

struct SwitchInfo {
  name @0 :Text;
  type @1 :Text;
  bridge @2 :Text;
  address @3 :Text;
  mtu @4 :UInt32;
  ports @5 :List(Text);
  present @6 :Bool;   # the bridge exists on the host now
  up @7 :Bool;
}

struct VmSummary {
  name @0 :Text;
  datastore @1 :Text;
  loader @2 :Text;
  cpu @3 :UInt32;
  memory @4 :Text;
  state @5 :Text;          # "stopped", "running (PID)"
  pid @6 :Int32;
  lastExit @7 :Text;       # how the core last ended, e.g. "poweroff"
  consolePath @8 :Text;
  autostart @9 :Bool;      # listed in vm_list
  # A running VM's cgroup ("" when stopped or when the host gives it none)
  # and what it reads there.
  cgroup @10 :Text;
  cpuMicroseconds @11 :UInt64;
  memoryBytes @12 :Int64;  # -1: not accounted (no memory controller)
  resources @13 :List(Text);  # limits applied, usage per process, I/O: one line each
  vnc @14 :Text;              # where a running VM's VNC server listens, "" without graphics
}

struct DeviceStatus {
  name @0 :Text;           # e.g. "virtio-blk-4.0"
  pid @1 :Int32;
  state @2 :Text;          # running | restarting | failed
  restarts @3 :UInt32;
  lastExit @4 :Text;
  policy @5 :Text;
  sandbox @6 :Text;        # off | log | enforce
  lastViolation @7 :Text;
  backend @8 :Text;        # the disk image, or the tap and its switch
}
