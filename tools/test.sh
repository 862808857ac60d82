#!/bin/sh
# Sets up and runs the whole test suite: a normal build, then the same
# suite under AddressSanitizer and UndefinedBehaviorSanitizer.
set -eu
cd "$(dirname "$0")/.."
./tools/install-deps.sh
jobs=$(nproc)
# Debian's kernel for the loader test and (on VT-x/AMD-V hosts) the Linux boot test.
./tools/fetch-linux.sh || echo "test: no Linux kernel; its tests will report SKIP" >&2
# The Linux test guest's kernel, built from Debian's linux-source once per
# machine (~7 minutes on 2 cores) and cached outside the clone.
./tests/linux/build-kernel.sh >/dev/null
# User-Mode Linux from the same source (~9 minutes once, cached the same
# way): Linux's own drivers against the device servers where there is no KVM.
./tests/linux/build-kernel.sh --uml >/dev/null
# noVNC and playwright-core from the npm registry, bundled once per version
# and cached outside the clone; without them the noVNC test reports SKIP.
./tests/novnc/setup.sh >/dev/null || echo "test: noVNC not prepared; its test will report SKIP" >&2
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build -j "$jobs"
# Unoptimised (quicker to build; the tests are short). The fuzz target is
# built with its own sanitizers in the first build already.
[ -f build-sanitize/build.ninja ] || meson setup build-sanitize -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug \
  -Dfuzz=disabled >/dev/null
ninja -C build-sanitize -j "$jobs"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# The Linux guest (minutes of emulated boot) runs once, in the normal build.
meson test -C build-sanitize --print-errorlogs --suite cellvisor --no-suite linux
meson test -C build --print-errorlogs
