#!/bin/sh
# Formats the tree with its .clang-format; `--check` changes nothing and
# fails, naming the files, when any tracked source differs from it.
set -eu
cd "$(dirname "$0")/.."
# Tracked files and new ones not yet added (but not ignored ones).
files=$(git ls-files --cached --others --exclude-standard '*.cc' '*.h' '*.c')
if [ "${1:-}" = "--check" ]; then
  # 77: meson's SKIP, for a copy of the tree that is not a git checkout.
  git rev-parse --git-dir >/dev/null 2>&1 || { echo "format: not a git checkout" >&2; exit 77; }
  unformatted=""
  for file in $files; do
    clang-format --style=file "$file" | cmp -s - "$file" || unformatted="$unformatted $file"
  done
  if [ -n "$unformatted" ]; then
    echo "format: not formatted (run tools/format.sh):$unformatted" >&2
    exit 1
  fi
  exit 0
fi
# shellcheck disable=SC2086
clang-format --style=file -i $files
