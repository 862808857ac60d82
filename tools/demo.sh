#!/bin/sh
# The main job: set up, build, and boot the bundled demo guest through the
# core with its console on this terminal. The guest tours the platform (ACPI,
# PCI, SMP, RTC) and powers itself off; exit status 1 means a clean poweroff.
set -eu
cd "$(dirname "$0")/.."
./tools/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
set +e
build/core/vmm-core -c 2 -m 256M -l com1,stdio -s 0,hostbridge -s 31,lpc \
  --kernel build/tests/guest/guest.elf --cmdline "test=demo" demo
status=$?
set -e
[ "$status" -eq 1 ] && echo "demo: guest powered off cleanly" && exit 0
echo "demo: core exited with status $status" >&2
exit 1
