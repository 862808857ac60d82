#!/bin/sh
# Builds a test kernel from Debian's linux-source-6.1: tinyconfig plus a
# fragment, cached outside the clone, keyed by the source package's version,
# the variant, the fragment, the patches and the recipe's version, so a
# machine builds it once and later runs reuse it. Prints the kernel's path.
#   build-kernel.sh [--uml] [--print-path]   (--print-path: the path, built or not)
# The default is the guest kernel: kernel.config with the patches in
# patches/, as a PVH vmlinux (~7 minutes on 2 cores). --uml builds User-Mode
# Linux instead (tests/uml/kernel.config and tests/uml/patches, ~9 minutes):
# the same drivers as a host process, for hosts without KVM
# (tests/uml/README.md).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
source_tar=/usr/src/linux-source-6.1.tar.xz
version=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true)
[ -n "$version" ] && [ -f "$source_tar" ] || {
  echo "build-kernel: linux-source-6.1 is not installed (apt-get install linux-source-6.1)" >&2
  exit 1
}
# Bump when the steps below change what they build (editing this script
# otherwise does not cost a rebuild).
recipe=1
if [ "${1:-}" = --uml ]; then
  shift
  # The guest kernel's patches are the emulated ring 0's (arch/x86/kernel,
  # arch/x86/mm), which User-Mode Linux does not compile; it has its own.
  variant=uml arch=um target=linux fragment="$here/../uml/kernel.config" tag=" uml"
  patches=$(ls "$here"/../uml/patches/*.patch)
else
  variant=linux arch=x86 target=vmlinux fragment="$here/kernel.config" patches=$(ls "$here"/patches/*.patch) tag=""
fi
# shellcheck disable=SC2086 # $patches is a list of paths without spaces.
key=$( (echo "$version $recipe$tag"; cat "$fragment" $patches) | sha256sum | cut -c1-16)
cache=${CELLVISOR_CACHE:-/var/cache/cellvisor}/$variant-$key
if [ "${1:-}" = --print-path ]; then
  echo "$cache/$target"
  exit 0
fi
if [ -f "$cache/$target" ]; then
  echo "$cache/$target"
  exit 0
fi
echo "build-kernel: building Linux $version ($variant) for the tests (once per machine, minutes)" >&2
mkdir -p "$(dirname "$cache")"
work=$(mktemp -d "$(dirname "$cache")/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xf "$source_tar"
tree="$work/linux-source-6.1"
for patch in $patches; do
  patch -s -d "$tree" -p1 <"$patch"
done
make -s -C "$tree" ARCH=$arch tinyconfig >/dev/null
KCONFIG_CONFIG="$tree/.config" ARCH=$arch "$tree/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" \
  "$fragment" >/dev/null
make -s -C "$tree" ARCH=$arch olddefconfig >/dev/null
# Every line of the fragment must have survived (a dependency that is not met
# drops a symbol silently).
missing=$(grep -E '^CONFIG_' "$fragment" | while IFS= read -r line; do
  case $line in
    *=n) if grep -qx "${line%=n}=y" "$tree/.config"; then echo "$line"; fi ;;
    *) if ! grep -qx "$line" "$tree/.config"; then echo "$line"; fi ;;
  esac
done)
[ -z "$missing" ] || { echo "build-kernel: not taken by Kconfig: $missing" >&2; exit 1; }
log="$cache.log"
echo "build-kernel: compiling (log: $log)" >&2
if [ -t 2 ]; then
  # One dot per file compiled, so a terminal sees it move.
  make -C "$tree" ARCH=$arch -j"$(nproc)" $target 2>&1 | tee "$log" | while IFS= read -r _; do printf . >&2; done
  echo >&2
else
  make -C "$tree" ARCH=$arch -j"$(nproc)" $target >"$log" 2>&1 || true
fi
[ -f "$tree/$target" ] || { tail -n 30 "$log" >&2; echo "build-kernel: the kernel build failed" >&2; exit 1; }
mkdir -p "$cache.tmp"
cp "$tree/$target" "$cache.tmp/$target"
cp "$tree/.config" "$cache.tmp/config"
rm -rf "$cache"
mv "$cache.tmp" "$cache"
# Kernels built from other inputs are stale now.
for stale in "$(dirname "$cache")/$variant"-*; do
  case $stale in "$cache" | "$cache.log") ;; *) rm -rf "$stale" ;; esac
done
echo "$cache/$target"
