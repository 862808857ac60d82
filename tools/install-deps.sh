#!/bin/sh
# Installs what building and testing cellvisor needs on Debian 12. Idempotent;
# skips apt entirely when everything is already there.
set -eu
packages="g++ meson ninja-build pkg-config capnproto libcapnp-dev libuv1-dev libboost-dev
  liburing-dev libseccomp-dev libvncserver-dev libgcrypt20-dev libgtest-dev libgmock-dev libfmt-dev libcli11-dev libnl-route-3-dev iproute2
  clang clang-format libclang-rt-14-dev
  qemu-system-x86 chromium nodejs seabios acpica-tools edid-decode grub-pc-bin ovmf gnu-efi mtools dosfstools xorriso linux-source-6.1 xz-utils patch make bc flex bison libelf-dev busybox-static e2fsprogs $*"
missing=""
for package in $packages; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
# npm: Debian's package, unless the installed Node.js brings its own (a
# nodesource build conflicts with Debian's npm).
command -v npm >/dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
