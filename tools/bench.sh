#!/bin/sh
# Runs the benchmarks in bench/ with their peers (QEMU, fio) installed
# alongside. Figures and how to read them: bench/README.md.
set -eu
cd "$(dirname "$0")/.."
./tools/install-deps.sh qemu-system-x86 fio seabios
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build bench/boot-time bench/blk-bench bench/nvme-bench bench/restart-bench bench/net-bench bench/vmmd-bench bench/linux-boot bench/firmware-boot bench/ahci-bench bench/display-bench >/dev/null
ninja -C build >/dev/null
build/bench/boot-time --runs "${RUNS:-20}" build/core/vmm-core build/tests/guest/guest.elf "$(command -v qemu-system-x86_64)"
build/bench/firmware-boot --runs "${FIRMWARE_RUNS:-5}" build/core/vmm-core /usr/share/seabios/bios-256k.bin \
  build/tests/firmware/disk-check.bin "$(command -v qemu-system-x86_64)"
build/bench/blk-bench --seconds "${SECONDS_PER_RUN:-3}" /dev/shm /var/tmp
build/bench/nvme-bench --seconds "${SECONDS_PER_RUN:-3}" /dev/shm /var/tmp 2>/dev/null
build/bench/ahci-bench --seconds "${SECONDS_PER_RUN:-3}" /dev/shm /var/tmp 2>/dev/null
build/bench/restart-bench --restarts "${RESTARTS:-100}" /dev/shm 2>/dev/null
build/bench/restart-bench --restarts "${RESTARTS:-100}" --vmmd-loop /dev/shm 2>/dev/null
build/bench/net-bench
build/bench/vmmd-bench --runs "${RUNS:-20}" build/vmmd/vmmd build/tests/guest/guest.elf
build/bench/linux-boot --runs "${LINUX_RUNS:-3}" build/core/vmm-core "$(tests/linux/build-kernel.sh)" \
  build/tests/linux/initramfs.cpio tests/linux/emulating-host.cmdline "$(command -v qemu-system-x86_64)"
build/bench/display-bench --seconds "${DISPLAY_SECONDS:-15}" build/core/vmm-core build/tests/guest/guest.elf "$(command -v qemu-system-x86_64)"
