#!/bin/bash
# Block-device volumes, opt in: `imgaudit scan --devices GLOB...` audits the
# block devices the globs name, read-only (O_RDONLY, never O_EXCL), sized by
# BLKGETSIZE64; a qcow2 on a volume is mapped as its format says, a raw one
# is a raw disk of the device's size (recognised_by 'option').  Nothing else
# is a device to open: a glob match that is not a block device is refused,
# a device node found by the walk is still recorded and never opened, a
# detached loop device (0 bytes) is recorded, not read.  Loop devices stand
# in for LVs (losetup, as root: CI runs the suite as root).
. "$(dirname "$0")/lib.sh"
lib_workdir dev
LOOPS=()
lib_on_exit() {
	for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
}
if [ "$(id -u)" != 0 ] || ! command -v losetup >/dev/null; then
	echo "test_scan_devices: needs root and losetup (CI runs as root)"
	exit 1
fi

# a qcow2 written to a 128 MiB volume, a raw 32 MiB volume
qemu-img create -q -f qcow2 q.qcow2 64M
qemu-io -c 'write -P 0x11 1M 2M' q.qcow2 >/dev/null
truncate -s 128M lvq.img
dd if=q.qcow2 of=lvq.img conv=notrunc status=none
truncate -s 32M lvr.img
printf 'guest bytes' | dd of=lvr.img bs=1 seek=4096 conv=notrunc status=none
LQ=$(losetup -f --show lvq.img) && LOOPS+=("$LQ") || { echo "losetup failed"; exit 1; }
LR=$(losetup -f --show lvr.img) && LOOPS+=("$LR") || { echo "losetup failed"; exit 1; }
sum_before=$(sha256sum lvq.img lvr.img)
# a loop device over a whole file spends that file's blocks (the kernel names it in sysfs)
A_LQ=$(($(stat -c %b lvq.img) * 512)) A_LR=$(($(stat -c %b lvr.img) * 512))
[ "$A_LR" -lt 33554432 ] && ok || bad "the raw volume's file is sparse"
# a loop device with an offset: its size is the upper bound
truncate -s 8M off.img
LO=$(losetup -f --show -o 1048576 off.img) && LOOPS+=("$LO") || { echo "losetup failed"; exit 1; }
# a volume group's directory: symlinks to the devices, as /dev/vg0/* are
mkdir -p vg0 store
ln -s "$LQ" vg0/vm-100-disk-0
ln -s "$LR" vg0/vm-101-disk-0
echo "not a device" >vg0/README
# the walk still never opens a device node it meets under a ROOT
mknod store/blk b "$((0x$(stat -c '%t' "$LR")))" "$((0x$(stat -c '%T' "$LR")))"
qemu-img create -q -f qcow2 store/plain.qcow2 1M

# another process holds the volume exclusively (O_EXCL): an exclusive open by us would fail
python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)
open("held", "w").close()
time.sleep(30)' "$LQ" &
HOLDER=$!
for _ in $(seq 50); do [ -e held ] && break; sleep 0.1; done

"$IMGAUDIT" scan --db db.sqlite --quiet --devices 'vg0/*' --devices "$LQ" store 2>err.txt
eq "exit status: the non-device match is a problem" "$?" "1"
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null
q() { sqlite3 db.sqlite "$1"; }
eq "the volumes: format, size, allocation, status" \
	"$(q "SELECT path, format, virtual_size, allocated_bytes, status FROM v_images WHERE path LIKE '$WORK/vg0/%' ORDER BY path")" \
	"$(printf 'vg0/vm-100-disk-0|qcow2|67108864|%s|ok\nvg0/vm-101-disk-0|raw|33554432|%s|ok' "$A_LQ" "$A_LR")"
eq "one file per device (a glob and its name)" "$(q "SELECT count(*) FROM files WHERE path = '$LQ'")" "0"
eq "recognised by" "$(q "SELECT f.path, i.recognised_by FROM images i JOIN files f ON f.id = i.file_id
        WHERE f.path LIKE '$WORK/vg0/%' ORDER BY f.path")" "$(printf 'vg0/vm-100-disk-0|content\nvg0/vm-101-disk-0|option')"
eq "the file size is the device's" "$(q "SELECT size FROM files WHERE path = '$WORK/vg0/vm-101-disk-0'")" "33554432"
eq "qcow2 on a volume: its own map" "$(q "SELECT start, length, data FROM v_map WHERE path = '$WORK/vg0/vm-100-disk-0' ORDER BY start")" \
	"$(printf '0|1048576|0\n1048576|2097152|1\n3145728|63963136|0')"
eq "a glob match that is not a device" "$(q "SELECT kind, reason FROM v_entries WHERE path = '$WORK/vg0/README'")" "unreadable|not-a-device"
eq "a device under a ROOT: recorded, not opened" "$(q "SELECT kind FROM v_entries WHERE path = '$WORK/store/blk'")" "device"
eq "the ROOT's files are scanned too" "$(q "SELECT format FROM v_images WHERE path = '$WORK/store/plain.qcow2'")" "qcow2"
"$IMGAUDIT" scan --db off.sqlite --quiet --devices "$LO"
eq "a loop device with an offset: allocation is its size" "$(sqlite3 off.sqlite "SELECT size, allocated FROM files WHERE path = '$LO'")" "7340032|7340032"
eq "never written" "$(sha256sum lvq.img lvr.img)" "$sum_before"

# devices only, no ROOT; a glob that matches nothing; a detached loop device
FREE=$(losetup -f)
[ -b "$FREE" ] || mknod "$FREE" b 7 "${FREE#/dev/loop}"
"$IMGAUDIT" scan --db only.sqlite --quiet --devices "$LR" --devices "$FREE" --devices 'vg9/*' 2>/dev/null
eq "devices only: exit 1 (the glob matching nothing)" "$?" "1"
eq "devices only: the raw volume" "$(sqlite3 only.sqlite "SELECT path, format FROM v_images")" "$LR|raw"
eq "a detached loop device: recorded, not read" "$(sqlite3 only.sqlite "SELECT kind, reason FROM v_entries WHERE path = '$FREE'")" "device|empty"
eq "a glob that matches nothing" "$(sqlite3 only.sqlite "SELECT kind, reason FROM v_entries WHERE path = '$WORK/vg9/*'")" "unreadable|missing"
# detached after a scan: the next scan records it empty, and keeps nothing stale
losetup -d "$LR"
"$IMGAUDIT" scan --db only.sqlite --quiet --devices "$LR" 2>/dev/null
eq "detached since: no image" "$(sqlite3 only.sqlite "SELECT count(*) FROM v_images")" "0"
eq "detached since: recorded empty" "$(sqlite3 only.sqlite "SELECT kind, reason FROM v_entries WHERE path = '$LR'")" "device|empty"
# the usage: an empty glob, no ROOT and no --devices
"$IMGAUDIT" scan --db x.sqlite --devices '' . 2>/dev/null
eq "--devices '' is a usage error" "$?" "2"
"$IMGAUDIT" scan --db x.sqlite 2>/dev/null
eq "no ROOT, no --devices: usage error" "$?" "2"

lib_summary test_scan_devices
