#!/bin/sh
# Builds the test kernel from Debian's linux-source-6.1: tinyconfig plus
# kernel.config, with the patches in patches/, as a PVH vmlinux. The result
# is cached outside the clone, keyed by the source package's version, the
# fragment, the patches and the recipe's version, so a machine builds it once
# (~7 minutes on 2 cores) and later runs reuse it. Prints the vmlinux's path.
#   build-kernel.sh [--print-path]   (--print-path: the path, built or not)
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
key=$( (echo "$version $recipe"; cat "$here/kernel.config" "$here"/patches/*.patch) | sha256sum | cut -c1-16)
cache=${CELLVISOR_CACHE:-/var/cache/cellvisor}/linux-$key
if [ "${1:-}" = --print-path ]; then
  echo "$cache/vmlinux"
  exit 0
fi
if [ -f "$cache/vmlinux" ]; then
  echo "$cache/vmlinux"
  exit 0
fi
echo "build-kernel: building Linux $version for the test guest (once per machine, ~7 minutes on 2 cores)" >&2
mkdir -p "$(dirname "$cache")"
work=$(mktemp -d "$(dirname "$cache")/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xf "$source_tar"
tree="$work/linux-source-6.1"
for patch in "$here"/patches/*.patch; do
  patch -s -d "$tree" -p1 <"$patch"
done
make -s -C "$tree" tinyconfig >/dev/null
KCONFIG_CONFIG="$tree/.config" "$tree/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" \
  "$here/kernel.config" >/dev/null
make -s -C "$tree" olddefconfig >/dev/null
# Every line of the fragment must have survived (a dependency that is not met
# drops a symbol silently).
missing=$(grep -E '^CONFIG_' "$here/kernel.config" | while IFS= read -r line; do
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
  make -C "$tree" -j"$(nproc)" vmlinux 2>&1 | tee "$log" | while IFS= read -r _; do printf . >&2; done
  echo >&2
else
  make -C "$tree" -j"$(nproc)" vmlinux >"$log" 2>&1 || true
fi
[ -f "$tree/vmlinux" ] || { tail -n 30 "$log" >&2; echo "build-kernel: the kernel build failed" >&2; exit 1; }
mkdir -p "$cache.tmp"
cp "$tree/vmlinux" "$cache.tmp/vmlinux"
cp "$tree/.config" "$cache.tmp/config"
rm -rf "$cache"
mv "$cache.tmp" "$cache"
# Kernels built from other inputs are stale now.
for stale in "$(dirname "$cache")"/linux-*; do
  case $stale in "$cache" | "$cache.log") ;; *) rm -rf "$stale" ;; esac
done
echo "$cache/vmlinux"
