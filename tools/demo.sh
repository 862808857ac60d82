#!/bin/sh
# The main job: set up, build, and boot a Linux VM the way a user runs VMs:
# vmmd on the embedded default datastore in the user's dir, a VM created
# from a template with a virtio-blk disk and a virtio-net NIC on a switch,
# started with its console on this terminal (vmctl start -f). Each device
# runs in its own sandboxed server process, driven by Linux's own drivers.
#   tools/demo.sh               Linux 6.1 (tests/linux) to a busybox shell;
#                               'exit' in it powers the VM off. Without a
#                               terminal the guest checks its devices and
#                               powers off by itself.
#   tools/demo.sh --test-guest  the bundled test guest instead: it tours the
#                               platform, its disk and NIC, and powers off.
# vmmd runs in a network namespace of the demo's own: the switch (a Linux
# bridge) and the VM's tap never touch the host's network.
set -eu
cd "$(dirname "$0")/.."
guest=linux
case "${1:-}" in
  --test-guest) guest=test ;;
  "") ;;
  *) echo "usage: tools/demo.sh [--test-guest]" >&2; exit 2 ;;
esac
./tools/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
root=$(pwd)
store="${CELLVISOR_DATASTORE:-$HOME/.local/share/cellvisor}"
socket="$store/.config/vmmd.sock"
vmctl() { "$root/build/cli/vmctl" -S "$socket" "$@"; }
mkdir -p "$store/.templates" "$store/.config"
emulating=no
if ! grep -qwE 'vmx|svm' /proc/cpuinfo || [ -d /sys/module/kvm_pvm ]; then emulating=yes; fi

if [ "$guest" = linux ]; then
  echo "demo: the Linux test kernel (built from Debian's linux-source once per machine, then cached)"
  kernel=$(./tests/linux/build-kernel.sh)
  steps=drivers,fs,net
  [ -t 0 ] && steps=$steps,shell
  cmdline="console=ttyS0 panic=-1 linux-guest.steps=$steps linux-guest.fs=vda"
  cmdline="$cmdline linux-guest.ip=10.99.0.2 linux-guest.peer=10.99.0.1 linux-guest.pings=5"
  # What the emulator cannot run, or runs too slowly, and the core cannot
  # hide: the kernel is told to ignore it (tests/linux/emulating-host.md).
  [ "$emulating" = yes ] && cmdline="$cmdline $(cat tests/linux/emulating-host.cmdline)"
  about="Linux 6.1 on busybox"
  boot="kernel=\"$kernel\"
kernel_initrd=\"$root/build/tests/linux/initramfs.cpio\"
kernel_cmdline=\"$cmdline\""
  if [ "$emulating" = yes ]; then
    echo "demo: this host's KVM emulates guest kernel code (no VT-x/AMD-V): Linux takes about a minute to reach its shell"
  fi
else
  about="The bundled test guest"
  boot="kernel=\"$root/build/tests/guest/guest.elf\"
kernel_cmdline=\"test=demo ip=10.99.0.2 peer=10.99.0.1\""
fi
cat >"$store/.templates/demo.conf" <<CONF
# $about: 2 vCPUs, a disk, a NIC on switch "demo", com1.
loader="kernel"
$boot
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
# Ready when it answers (a socket file alone may be one a killed vmmd left).
for _ in $(seq 100); do vmctl list >/dev/null 2>&1 && break; sleep 0.1; done
vmctl switch list | grep -q '^demo ' || vmctl switch create -a 10.99.0.1/24 demo
# The demo VM is made afresh from the template each time (its disk is scratch).
vmctl destroy -f demo >/dev/null 2>&1 || true
vmctl create -t demo demo
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
