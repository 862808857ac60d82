#!/bin/sh
# Builds a BIOS-bootable disk image with Debian's GRUB (grub-pc-bin) on it,
# the way grub-install lays one out, without loop devices or mounts: GRUB's
# boot.img in the MBR, its core.img in the gap before partition 1, and an
# ext2 partition 1 holding KERNEL and a grub.cfg that multiboots it.
#   make-grub-disk.sh OUTPUT KERNEL "KERNEL ARGUMENTS"
set -eu
output=$1
kernel=$2
arguments=$3
grub=/usr/lib/grub/i386-pc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/root/boot/grub"
cp "$kernel" "$work/root/kernel.elf"
cat > "$work/root/boot/grub/grub.cfg" <<CFG
set timeout=0
multiboot /kernel.elf $arguments
boot
CFG
# Partition 1 from 1 MiB (sector 2048), 8 MiB, ext2 filled from the tree.
partition_start=2048
partition_sectors=16384
mke2fs -q -t ext2 -d "$work/root" "$work/part.img" $((partition_sectors / 2))k

# core.img: what GRUB needs to read that partition and load the config.
grub-mkimage -O i386-pc -o "$work/core.img" -p "(hd0,msdos1)/boot/grub" \
  biosdisk part_msdos ext2 multiboot normal configfile
core_sectors=$(( ($(stat -c %s "$work/core.img") + 511) / 512 ))
[ "$core_sectors" -lt "$partition_start" ] || { echo "core.img does not fit before partition 1" >&2; exit 1; }

rm -f "$output"
truncate -s $(( (partition_start + partition_sectors) * 512 )) "$output"
# MBR: boot.img's code (446 bytes), then one bootable Linux partition.
dd if="$grub/boot.img" of="$output" bs=446 count=1 conv=notrunc status=none
"$(dirname "$0")/write-mbr.sh" "$output" "$partition_start" "$partition_sectors" 83
# core.img from sector 1, where boot.img looks by default (its kernel sector).
dd if="$work/core.img" of="$output" bs=512 seek=1 conv=notrunc status=none
# core.img's first sector loads the rest from the blocklist at its end: the
# default start (sector 2) is right; the length is what grub-install fills.
printf "$(printf '\\%03o\\%03o' $(( (core_sectors - 1) & 255 )) $(( (core_sectors - 1) >> 8 )))" |
  dd of="$output" bs=1 seek=$((512 + 0x1fc)) conv=notrunc status=none
dd if="$work/part.img" of="$output" bs=512 seek="$partition_start" conv=notrunc status=none
