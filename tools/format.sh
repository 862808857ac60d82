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
  # One clang-format for the whole tree (one process a file took minutes
  # on a busy 2-core machine); it names each place that differs.
  # shellcheck disable=SC2086
  if ! report=$(clang-format --style=file --dry-run -Werror $files 2>&1); then
    unformatted=$(printf '%s\n' "$report" | sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error:.*/\1/p' | sort -u | tr '\n' ' ')
    echo "format: not formatted (run tools/format.sh): ${unformatted:-$report}" >&2
    exit 1
  fi
  exit 0
fi
# shellcheck disable=SC2086
clang-format --style=file -i $files
