#!/bin/bash
# Raw disks are images: a file no format recognises is a raw disk when its
# content starts like a disk (a partition table, a file system, swap, LVM,
# ISO 9660) or its name matches the raw globs (default *.img *.raw *.iso;
# --raw-glob to choose, --raw-glob= for none); images.recognised_by says
# which.  Text, logs and databases stay not-an-image.  Expectations are
# written by hand for a libvirt-style pool and an OpenStack _base.
. "$(dirname "$0")/lib.sh"
lib_workdir raw

mkdir -p pool/vms pool/_base pool/misc
truncate -s 64M pool/vms/scratch-01.img             # a sparse raw disk: by name
fallocate -l 16M pool/vms/prealloc-db.img           # preallocated: by name
truncate -s 8M pool/vms/vm-100-disk-0.raw           # Proxmox directory storage: by name
python3 - pool/_base/8d9c1c2a0f6e4b7d <<'PY'        # Nova _base: an MBR, no extension
import struct, sys
with open(sys.argv[1], "wb") as f:
    f.truncate(32 << 20)
    f.seek(446)
    # one bootable Linux partition from sector 2048, 63488 sectors
    f.write(bytes([0x80, 0, 0, 0, 0x83, 0, 0, 0]) + struct.pack("<II", 2048, 63488))
    f.seek(510); f.write(b"\x55\xaa")
    f.seek(1 << 20); f.write(b"\x42" * 65536)
PY
python3 - pool/misc/gpt.bin <<'PY'                  # a GPT header at LBA 1
import sys
with open(sys.argv[1], "wb") as f:
    f.truncate(4 << 20)
    f.seek(446); f.write(bytes([0, 0, 2, 0, 0xee, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0xff, 0xff, 0, 0]))
    f.seek(510); f.write(b"\x55\xaa")
    f.seek(512); f.write(b"EFI PART")
PY
truncate -s 8M pool/misc/fs.bin && mkfs.ext4 -q -F pool/misc/fs.bin
truncate -s 4M pool/misc/swap.bin && mkswap -q pool/misc/swap.bin >/dev/null 2>&1
python3 - pool/misc/install.iso <<'PY'              # ISO 9660: by content and by name
import sys
with open(sys.argv[1], "wb") as f:
    f.truncate(1 << 20)
    f.seek(32768); f.write(b"\x01CD001\x01")
PY
python3 - pool/misc/cdrom.bin <<'PY'                # ISO 9660 without the name
import sys
with open(sys.argv[1], "wb") as f:
    f.truncate(1 << 20)
    f.seek(32768); f.write(b"\x01CD001\x01")
PY
echo "a log line" >pool/misc/app.log
printf 'notes\n' >pool/misc/notes.txt
sqlite3 pool/misc/app.sqlite "CREATE TABLE t (x); INSERT INTO t VALUES (1)"
head -c 1M /dev/zero >pool/misc/zeros.bin          # no signature, no raw name: not a disk
qemu-img create -q -f qcow2 pool/vms/web.qcow2 64M  # by its format
find pool -type f -exec touch -m -d "@$(($(date +%s) - 3600))" {} +

"$IMGAUDIT" scan --db db.sqlite --quiet pool
eq "scan" "$?" "0"
q() { sqlite3 db.sqlite "$1"; }
eq "images and why" "$(q "SELECT v.path, v.format, i.recognised_by FROM v_images v
        JOIN files f ON f.path = v.path JOIN images i ON i.file_id = f.id
        AND i.scan_id = (SELECT id FROM v_latest_scan) ORDER BY v.path")" "$(printf '%s\n' \
	'pool/_base/8d9c1c2a0f6e4b7d|raw|content' \
	'pool/misc/cdrom.bin|raw|content' \
	'pool/misc/fs.bin|raw|content' \
	'pool/misc/gpt.bin|raw|content' \
	'pool/misc/install.iso|raw|content' \
	'pool/misc/swap.bin|raw|content' \
	'pool/vms/prealloc-db.img|raw|name' \
	'pool/vms/scratch-01.img|raw|name' \
	'pool/vms/vm-100-disk-0.raw|raw|name' \
	'pool/vms/web.qcow2|qcow2|content')"
eq "not images" "$(q "SELECT path FROM v_entries WHERE kind = 'not-an-image' ORDER BY path")" "$(printf '%s\n' \
	pool/misc/app.log pool/misc/app.sqlite pool/misc/notes.txt pool/misc/zeros.bin)"
eq "a preallocated raw disk counts its blocks" \
	"$(q "SELECT virtual_size, allocated_bytes FROM v_images WHERE path = '$WORK/pool/vms/prealloc-db.img'")" \
	"16777216|16777216"
eq "a sparse raw disk is mapped as holes" \
	"$(q "SELECT sum(length) FROM v_map WHERE path = '$WORK/pool/vms/scratch-01.img' AND NOT data")" "67108864"
python3 "$SOURCE_DIR/tests/scripts/scan_vmap_check.py" db.sqlite "$IMGAUDIT" --min 10 >/dev/null && ok ||
	bad "v_map of the raw disks differs from imgaudit map"

# unchanged: every raw disk is carried over, by content or by name
"$IMGAUDIT" scan --db db.sqlite --quiet pool
eq "rescan reads nothing" "$(q "SELECT files_read FROM scans ORDER BY id DESC LIMIT 1")" "0"
eq "rescan keeps the raw disks" "$(q "SELECT count(*) FROM v_images WHERE format = 'raw'")" "9"

# --raw-glob= : no name makes a raw disk, content still does
"$IMGAUDIT" scan --db none.sqlite --quiet --raw-glob= pool
eq "--raw-glob= : by content only" "$(sqlite3 none.sqlite "SELECT count(*) FROM v_images WHERE format = 'raw'")" "6"
eq "--raw-glob= : the named ones are not images" \
	"$(sqlite3 none.sqlite "SELECT count(*) FROM v_entries WHERE path LIKE '$WORK/pool/vms/%' AND kind = 'not-an-image'")" "3"
# a rescan judges names by its own --raw-glob: unchanged files the last
# scan's globs left (or made) raw disks by name are read again, no others
"$IMGAUDIT" scan --db none.sqlite --quiet pool
eq "globs back: the named ones read again" \
	"$(sqlite3 none.sqlite "SELECT files_read FROM scans ORDER BY id DESC LIMIT 1")" "3"
eq "globs back: raw disks by name again" \
	"$(sqlite3 none.sqlite "SELECT recognised_by, count(*) FROM v_images WHERE format = 'raw' GROUP BY 1 ORDER BY 1" | tr '\n' ' ')" \
	"$(sqlite3 db.sqlite "SELECT recognised_by, count(*) FROM v_images WHERE format = 'raw' GROUP BY 1 ORDER BY 1" | tr '\n' ' ')"
"$IMGAUDIT" scan --db none.sqlite --quiet --raw-glob= pool
eq "--raw-glob= again: the named ones read again" \
	"$(sqlite3 none.sqlite "SELECT files_read FROM scans ORDER BY id DESC LIMIT 1")" "3"
eq "--raw-glob= again: by content only" "$(sqlite3 none.sqlite "SELECT count(*) FROM v_images WHERE format = 'raw'")" "6"
"$IMGAUDIT" scan --db none.sqlite --quiet --raw-glob= pool
eq "--raw-glob= unchanged: nothing read" \
	"$(sqlite3 none.sqlite "SELECT files_read FROM scans ORDER BY id DESC LIMIT 1")" "0"
# --raw-glob GLOB replaces the defaults
"$IMGAUDIT" scan --db glob.sqlite --quiet --raw-glob '*.bin' pool
eq "--raw-glob '*.bin'" "$(sqlite3 glob.sqlite "SELECT path FROM v_images WHERE format = 'raw' AND path NOT IN
        (SELECT path FROM v_images WHERE path LIKE '$WORK/pool/misc/%.bin' AND path <> '$WORK/pool/misc/zeros.bin')
        ORDER BY path")" "$(printf '%s\n' pool/_base/8d9c1c2a0f6e4b7d pool/misc/install.iso pool/misc/zeros.bin)"

lib_summary test_scan_rawdisks
