#!/bin/sh
# Writes an MBR partition table with one bootable partition into IMAGE:
#   write-mbr.sh IMAGE START_SECTOR SECTORS TYPE_HEX
# (type 83: Linux, ef: EFI system). CHS fields are saturated: firmware and
# loaders address the partition by LBA. The boot code (bytes 0-445) is kept.
set -eu
image=$1
start=$2
sectors=$3
type=$4
# The bytes of a little-endian 32-bit value.
le32() { printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)))"; }
{
  printf '\200\376\377\377'
  printf "$(printf '\\%03o' $((0x$type)))"
  printf '\376\377\377'
  le32 "$start"
  le32 "$sectors"
} | dd of="$image" bs=1 seek=446 conv=notrunc status=none
printf '\125\252' | dd of="$image" bs=1 seek=510 conv=notrunc status=none
