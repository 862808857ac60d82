#!/bin/sh
# Fails, naming the file and the include, when code includes a layer above
# its own (docs/structure.md): base < sandbox, pci, proto < host, servers/runtime <
# servers/NAME < core < vmmd, cli.
set -eu
cd "$(dirname "$0")/.."
# 77: meson's SKIP, for a copy of the tree that is not a git checkout.
git rev-parse --git-dir >/dev/null 2>&1 || { echo "layers: not a git checkout" >&2; exit 77; }
status=0
check() {  # check DIRECTORY ALLOWED-PREFIXES...
  dir=$1
  shift
  pattern=$(printf '%s\n' "$@" | sed 's|/|\\/|g' | paste -sd'|')
  for file in $(git ls-files "$dir" | grep -E '\.(cc|h)$'); do
    # Project includes only: quoted, with a directory (generated headers such
    # as device.capnp.h have none).
    grep -Eo '^#include "[^"]+/[^"]+"' "$file" | sed 's/^#include "//; s/"$//' | while read -r include; do
      if ! printf '%s\n' "$include" | grep -Eq "^($pattern)"; then
        echo "layers: $file includes $include" >&2
        echo fail
      fi
    done
  done | grep -q fail && status=1
  return 0
}
check base base/
check sandbox base/ sandbox/
check pci base/ pci/
check proto base/ proto/
check host base/ proto/ host/
check servers/runtime base/ pci/ proto/ sandbox/ servers/runtime/
# A server folder: the runtime and itself; its launch descriptor also host/.
for folder in $(git ls-files servers | sed -n 's|^servers/\([^/]*\)/.*|\1|p' | sort -u); do
  [ "$folder" = runtime ] && continue
  check "servers/$folder" base/ pci/ proto/ sandbox/ servers/runtime/ "servers/$folder/" host/
done
check core base/ pci/ proto/ sandbox/ host/ core/
exit $status
