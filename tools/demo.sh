#!/bin/sh
# The main job: set up, build, and boot the bundled demo guest the way a
# user runs VMs: vmmd on the embedded default datastore in the user's dir,
# a VM created from a template with a virtio-blk disk and a virtio-net NIC on
# a switch, started with its console on this terminal (vmctl start -f).
# Each device runs in its own sandboxed server process. The guest tours the
# platform (ACPI, PCI, SMP, RTC), writes and verifies its disk, resolves the
# switch's address by ARP and pings it, and powers itself off.
# vmmd runs in a network namespace of the demo's own: the switch (a Linux
# bridge) and the VM's tap never touch the host's network.
set -eu
cd "$(dirname "$0")/.."
./tools/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
root=$(pwd)
store="${CELLVISOR_DATASTORE:-$HOME/.local/share/cellvisor}"
socket="$store/.config/vmmd.sock"
vmctl() { "$root/build/cli/vmctl" -S "$socket" "$@"; }
mkdir -p "$store/.templates" "$store/.config"
# An earlier demo kept a bare disk image under demo/: make way for the VM.
[ -d "$store/demo" ] && [ ! -f "$store/demo/demo.conf" ] && rm -rf "$store/demo"
cat > "$store/.templates/demo.conf" <<CONF
# The bundled demo guest: 2 vCPUs, a disk, a NIC on switch "demo", com1.
loader="kernel"
kernel="$root/build/tests/guest/guest.elf"
kernel_cmdline="test=demo ip=10.99.0.2 peer=10.99.0.1"
cpu="2"
memory="256M"
disk0_type="virtio-blk"
disk0_name="disk0.img"
disk0_size="64M"
network0_type="virtio-net"
network0_switch="demo"
comports="com1"
CONF

unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$root/build/vmmd/vmmd" -d "$store" -S "$socket" \
  2>"$store/.config/vmmd.log" &
vmmd=$!
trap 'kill $vmmd 2>/dev/null; wait $vmmd 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.05; done
vmctl switch list | grep -q '^demo ' || vmctl switch create -a 10.99.0.1/24 demo
vmctl info demo >/dev/null 2>&1 || vmctl create -t demo demo
vmctl list
vmctl start -f demo
vmctl devices demo
if vmctl info demo | grep -q "last exit: poweroff"; then
  echo "demo: guest powered off cleanly"
  exit 0
fi
vmctl info demo >&2
echo "demo: the guest did not finish cleanly (see $store/demo/vmm.log)" >&2
exit 1
