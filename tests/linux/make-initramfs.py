#!/usr/bin/env python3
"""Writes the test guest's initramfs: an uncompressed newc cpio archive with
Debian's static busybox, links in /bin for the applets /init and a shell
user need (each link costs the emulated kernel tens of milliseconds to
unpack: all 400 took 30 s; `busybox NAME` reaches the rest), the init
script and the device nodes the kernel needs before devtmpfs is mounted. Written directly (not by cpio(1)) so that
building it needs no root for the device nodes and gives the same bytes on
every machine (fixed owners and times).

usage: make-initramfs.py OUTPUT BUSYBOX INIT
"""
import os
import stat
import subprocess
import sys


APPLETS = """sh ash awk blockdev cat cmp cp cttyhack cut date dd df dmesg echo free grep halt hexdump
ip ifconfig kill ls mkdir mke2fs mount mv od ping poweroff ps readlink reboot rm sed setsid sha256sum
sleep sync tail top tr umount uname uptime vi wc""".split()


def entry(name, mode, data=b"", rdev=(0, 0), ino=[0]):
    ino[0] += 1
    fields = [ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
    header = b"070701" + b"".join(b"%08X" % field for field in fields)
    record = header + name.encode() + b"\0"
    record += b"\0" * (-len(record) % 4)
    record += data + b"\0" * (-len(data) % 4)
    return record


def main():
    output, busybox, init = sys.argv[1:4]
    with open(busybox, "rb") as f:
        busybox_bytes = f.read()
    with open(init, "rb") as f:
        init_bytes = f.read()
    archive = b""
    for directory in ("bin", "dev", "proc", "sys", "tmp", "mnt"):
        archive += entry(directory, stat.S_IFDIR | 0o755)
    archive += entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    archive += entry("dev/null", stat.S_IFCHR | 0o666, rdev=(1, 3))
    archive += entry("bin/busybox", stat.S_IFREG | 0o755, busybox_bytes)
    available = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    missing = sorted(set(APPLETS) - set(available))
    if missing:
        sys.exit(f"make-initramfs: {busybox} lacks applets the guest needs: {' '.join(missing)}")
    for applet in APPLETS:
        archive += entry("bin/" + applet, stat.S_IFLNK | 0o777, b"busybox")
    archive += entry("init", stat.S_IFREG | 0o755, init_bytes)
    archive += entry("TRAILER!!!", 0)
    archive += b"\0" * (-len(archive) % 512)
    temporary = output + ".tmp"
    with open(temporary, "wb") as f:
        f.write(archive)
    os.replace(temporary, output)


if __name__ == "__main__":
    main()
