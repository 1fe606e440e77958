#!/bin/bash
# "What is an image" holds for archive members as for walked files (issue
# 10): a member no format recognises is a raw disk when its content starts
# like a disk (here an MBR under an unremarkable name) or its name matches
# the raw globs (disk.img; notes.img, text, is one by name as the same file
# outside the archive is), with images.recognised_by saying which, in a
# tar.gz (GNU sparse: holes stay holes) and in a zip (stored whole: data).
# Each member's row is checked by hand and against the same file walked
# beside the archives.  --raw-glob= leaves only the disks by content.  A raw
# member by name beside a big log does not make the log spooled (ulimit -f,
# as test_scan_member_probe.sh), and an unchanged rescan carries the rows.
. "$(dirname "$0")/lib.sh"
need_qemu
need python3 sqlite3 tar zip
lib_workdir archive-raw

mkdir -p src st/plain big
cd src
truncate -s 4M disk.img # sparse: 64 KiB of data at 1 MiB and at 3 MiB
printf '\x42%.0s' $(seq 65536) | dd of=disk.img bs=64k seek=16 conv=notrunc status=none
printf '\x43%.0s' $(seq 65536) | dd of=disk.img bs=64k seek=48 conv=notrunc status=none
python3 - data.bin <<'PY' # an MBR with one Linux partition, no raw name
import struct, sys
with open(sys.argv[1], "wb") as f:
    f.truncate(8 << 20)
    f.seek(446)
    f.write(bytes([0x80, 0, 0, 0, 0x83, 0, 0, 0]) + struct.pack("<II", 2048, 14336))
    f.seek(510); f.write(b"\x55\xaa")
    f.seek(1 << 20); f.write(b"\x42" * 65536)
PY
printf 'not a disk, only notes\n' >notes.img # text under a raw name
printf 'read me\n' >readme.txt               # text: not an image
truncate -s 2M base.img                      # a raw backing file by name
qemu-img create -q -f qcow2 -b base.img -F raw over.qcow2
qemu-io -c 'write -P 5 64k 64k' over.qcow2 >/dev/null
files="disk.img data.bin notes.img readme.txt base.img over.qcow2"
tar -S -czf ../st/a.tar.gz $files
zip -q ../st/b.zip $files
cp --sparse=always $files ../st/plain/
python3 "$HERE/big_member_archive.py" tgz ../big/big.tar.gz x.log 256 disk.img
python3 "$HERE/big_member_archive.py" zip ../big/big.zip x.log 2048 disk.img
cd ..
find st -type f -exec touch -m -d "@$(($(date +%s) - 3600))" {} +

"$IMGAUDIT" scan --db db.sqlite --quiet st
eq "scan" "$?" "0"
row() { # the image row of a path: format, recognised_by, virtual_size, own_data_bytes, status
	sqlite3 db.sqlite "SELECT i.format, i.recognised_by, i.virtual_size, i.own_data_bytes, i.status
        FROM images i JOIN files f ON f.id = i.file_id
        WHERE i.scan_id = (SELECT id FROM v_latest_scan) AND f.path = '$WORK/st/$1'"
}
for a in a.tar.gz b.zip; do
	eq "$a: the MBR member" "$(row "$a!data.bin" | cut -d'|' -f1-3,5)" "raw|content|8388608|ok"
	eq "$a: the named raw member" "$(row "$a!disk.img" | cut -d'|' -f1-3,5)" "raw|name|4194304|ok"
	eq "$a: text under a raw name" "$(row "$a!notes.img")" "raw|name|512|23|ok"
	eq "$a: the raw backing file" "$(row "$a!base.img" | cut -d'|' -f1-3,5)" "raw|name|2097152|ok"
	eq "$a: the overlay over it" "$(sqlite3 db.sqlite "SELECT format, status, chain_depth, backing_path
        FROM v_images WHERE path = '$WORK/st/$a!over.qcow2'")" "qcow2|ok|1|st/$a!base.img"
	eq "$a: members that are not images" "$(sqlite3 db.sqlite "SELECT path FROM v_entries
        WHERE kind = 'not-an-image' AND path LIKE '$WORK/st/$a!%'")" "st/$a!readme.txt"
	eq "$a: members add nothing on disk" "$(sqlite3 db.sqlite "SELECT count(*), sum(allocated_bytes)
        FROM v_images WHERE path LIKE '$WORK/st/$a!%'")" "5|0"
done
# the file-on-disk rules give the same rows
for f in data.bin disk.img notes.img base.img; do
	eq "st/plain/$f as the tar.gz member" "$(row "plain/$f")" "$(row "a.tar.gz!$f")"
done
eq "plain/readme.txt" "$(sqlite3 db.sqlite "SELECT kind FROM v_entries WHERE path = '$WORK/st/plain/readme.txt'")" \
	"not-an-image"
# allocation as the member's content says: the sparse tar keeps the holes, a zip member is data
eq "tar.gz: holes stay holes" "$(row "a.tar.gz!disk.img" | cut -d'|' -f4)" "131072"
eq "zip: stored whole" "$(row "b.zip!disk.img" | cut -d'|' -f4)" "4194304"
eq "zip: the MBR member stored whole" "$(row "b.zip!data.bin" | cut -d'|' -f4)" "8388608"

# an unchanged rescan reads nothing and keeps every raw member
"$IMGAUDIT" scan --db db.sqlite --quiet st
eq "rescan reads nothing" "$(sqlite3 db.sqlite "SELECT files_read FROM scans ORDER BY id DESC LIMIT 1")" "0"
eq "rescan keeps the raw members" "$(sqlite3 db.sqlite "SELECT count(*) FROM v_images
        WHERE format = 'raw' AND path LIKE '%!%'")" "8"

# --raw-glob= : only the disks by content (and the backing file by reference)
"$IMGAUDIT" scan --db none.sqlite --quiet --raw-glob= st
eq "--raw-glob=" "$(sqlite3 none.sqlite "SELECT f.path, i.recognised_by FROM images i
        JOIN files f ON f.id = i.file_id WHERE i.format = 'raw' ORDER BY f.path")" "$(printf '%s\n' \
	'st/a.tar.gz!base.img|reference' 'st/a.tar.gz!data.bin|content' \
	'st/b.zip!base.img|reference' 'st/b.zip!data.bin|content' \
	'st/plain/base.img|reference' 'st/plain/data.bin|content')"

# a raw member by name does not make a big log beside it spooled
(
	trap '' XFSZ
	ulimit -f 16384
	"$IMGAUDIT" scan --db big.sqlite --quiet big
)
eq "scan under ulimit -f" "$?" "0"
for a in big.tar.gz big.zip; do
	eq "$a!x.log" "$(sqlite3 big.sqlite "SELECT kind FROM v_entries WHERE path = '$WORK/big/$a!x.log'")" \
		"not-an-image"
	eq "$a!disk.img" "$(sqlite3 big.sqlite "SELECT i.format, i.recognised_by, i.virtual_size
        FROM images i JOIN files f ON f.id = i.file_id WHERE f.path = '$WORK/big/$a!disk.img'")" \
		"raw|name|4194304"
done
eq "nothing unreadable" "$(sqlite3 big.sqlite "SELECT count(*) FROM v_entries WHERE kind = 'unreadable'")" "0"

lib_summary test_scan_archive_rawdisks
