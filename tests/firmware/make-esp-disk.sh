#!/bin/sh
# Builds a disk with one EFI system partition (FAT, made with dosfstools and
# mtools: no loop devices or mounts) holding APP as the removable-media
# default loader, \EFI\BOOT\BOOTX64.EFI, which UEFI firmware boots with no
# boot entries configured.
#   make-esp-disk.sh OUTPUT APP
set -eu
output=$1
app=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
partition_start=2048
partition_sectors=65536  # 32 MiB: FAT16.
mkfs.vfat -C "$work/esp.img" $((partition_sectors / 2)) >/dev/null
mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$work/esp.img" "$app" ::/EFI/BOOT/BOOTX64.EFI
rm -f "$output"
truncate -s $(( (partition_start + partition_sectors) * 512 )) "$output"
"$(dirname "$0")/write-mbr.sh" "$output" "$partition_start" "$partition_sectors" ef
dd if="$work/esp.img" of="$output" bs=512 seek="$partition_start" conv=notrunc status=none
