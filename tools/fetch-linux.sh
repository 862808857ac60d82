#!/bin/sh
# Fetches Debian's cloud kernel (bzImage) into build/linux/ for the Linux
# loader and tier-4 boot tests, without installing it on the host.
set -eu
cd "$(dirname "$0")/.."
out=.cache/linux
[ -f "$out/vmlinuz" ] && exit 0
package=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -n1)
[ -n "$package" ] || { echo "fetch-linux: no linux-image-cloud-amd64 in the package lists" >&2; exit 1; }
work=$(mktemp -d)
chmod 755 "$work"  # apt downloads as _apt
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq "$package" >/dev/null)
dpkg-deb -x "$work"/*.deb "$work/root"
mkdir -p "$out"
cp "$work"/root/boot/vmlinuz-* "$out/vmlinuz"
echo "fetch-linux: $package -> $out/vmlinuz"
