#!/bin/sh
# Runs the benchmarks in bench/ with their peers (QEMU) installed alongside.
set -eu
cd "$(dirname "$0")/.."
./tools/install-deps.sh qemu-system-x86
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
build/bench/boot-time --runs "${RUNS:-20}" build/core/vmm-core build/tests/guest/guest.elf "$(command -v qemu-system-x86_64)"
