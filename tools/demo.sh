#!/bin/sh
# The main job: set up, build, and boot the bundled demo guest through the
# core with its console on this terminal and a virtio-blk disk served by its
# own sandboxed device server. The guest tours the platform (ACPI, PCI, SMP,
# RTC), writes and verifies its disk, and powers itself off; exit status 1
# means a clean poweroff. (No NIC yet: virtio-net is a later issue.)
set -eu
cd "$(dirname "$0")/.."
./tools/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
# The demo's disk lives in the embedded default datastore in the user's dir.
datastore="${CELLVISOR_DATASTORE:-$HOME/.local/share/cellvisor}/demo"
mkdir -p "$datastore"
[ -f "$datastore/disk0.img" ] || truncate -s 64M "$datastore/disk0.img"
set +e
build/core/vmm-core -c 2 -m 256M -l com1,stdio -s 0,hostbridge -s 31,lpc \
  -s 4,virtio-blk,"$datastore/disk0.img" \
  --kernel build/tests/guest/guest.elf --cmdline "test=demo" demo
status=$?
set -e
[ "$status" -eq 1 ] && echo "demo: guest powered off cleanly" && exit 0
echo "demo: core exited with status $status" >&2
exit 1
