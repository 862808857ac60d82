#!/bin/sh
# Prepares the noVNC test outside the clone, once per package.json: npm
# installs noVNC, esbuild and playwright-core into
# /var/cache/cellvisor/novnc-HASH, and esbuild bundles noVNC's RFB client
# for the browser (rfb.bundle.js). Prints that directory, with the current
# novnc-check.mjs copied in (it finds playwright-core there).
#   tests/novnc/setup.sh           prepare (npm registry needed the first time)
#   tests/novnc/setup.sh --cached  only print it if already prepared
set -eu
here=$(cd "$(dirname "$0")" && pwd)
hash=$(sha256sum <"$here/package.json" | cut -c1-16)
dir="${CELLVISOR_CACHE:-/var/cache/cellvisor}/novnc-$hash"
if [ -f "$dir/rfb.bundle.js" ]; then
  cp "$here/novnc-check.mjs" "$dir/novnc-check.mjs.new" && mv "$dir/novnc-check.mjs.new" "$dir/novnc-check.mjs"
  echo "$dir"
  exit 0
fi
[ "${1:-}" = "--cached" ] && exit 1
command -v npm >/dev/null || { echo "setup: npm missing" >&2; exit 1; }
mkdir -p "$dir.tmp"
cp "$here/package.json" "$here/novnc-check.mjs" "$dir.tmp/"
(cd "$dir.tmp" && npm install --no-audit --no-fund --silent >/dev/null &&
  npx esbuild node_modules/@novnc/novnc/lib/rfb.js --bundle --format=iife --global-name=noVNC \
    --outfile=rfb.bundle.js --log-level=warning)
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$dir"
