#!/bin/bash
# Incremental scans: an unchanged file (same dev, ino, size, mtime, ctime) whose
# whole chain is unchanged is not re-read and its rows are carried over; a
# changed overlay is the only file re-read; a changed base re-reads every
# image above it.  The carried-over views must equal a full rescan's.
. "$(dirname "$0")/lib.sh"
lib_workdir scan
q() { sql_eq db.sqlite "$1" "$2"; }
dump() { sqlite3 "$1" "SELECT * FROM v_images ORDER BY path; SELECT * FROM v_map ORDER BY path, start; SELECT * FROM v_links ORDER BY path, backing; SELECT * FROM v_entries ORDER BY path"; }
# Files this test writes are made a minute old before a scan: a file modified
# within 2 s of a scan's start is read again by the next scan as well (it may
# be racily clean: tested at the end), which the counts below do not expect.
age() { find "$@" -type f -newermt '5 seconds ago' ! -name '*.sqlite*' -exec touch -m -d "@$(($(date +%s) - 60))" {} +; }
scan() { age s && "$IMGAUDIT" scan --db db.sqlite --quiet s; }
last() { sqlite3 db.sqlite "SELECT $1 FROM scans ORDER BY id DESC LIMIT 1"; }

mkdir -p s/base s/vm
qemu-img create -q -f qcow2 s/base/b.qcow2 4M
qemu-io -c 'write -P 1 0 1M' s/base/b.qcow2 >/dev/null
for i in 1 2 3 4; do
	qemu-img create -q -f qcow2 -b ../base/b.qcow2 -F qcow2 s/vm/o$i.qcow2
	qemu-io -c "write -P $i ${i}00k 64k" s/vm/o$i.qcow2 >/dev/null
done
yes 'raw backing data' | head -c 1M > s/base/r.bin # no raw glob: an image while one uses it
qemu-img create -q -f qcow2 -b ../base/r.bin -F raw s/vm/onraw.qcow2
echo text > s/notes.txt

scan; [ $? = 0 ] && ok || bad "first scan"
q "SELECT files_read, files_reused FROM scans WHERE id = 1" "8|0"
scan; [ $? = 0 ] && ok || bad "second scan"
q "SELECT files_read, files_reused, status FROM scans WHERE id = 2" "0|8|complete"
q "SELECT count(*) FROM images WHERE scan_id = 2 AND reused_from IS NOT NULL" "7"
# carried-over images share their pieces and layers: an unchanged rescan adds none
q "SELECT (SELECT count(*) FROM pieces) = (SELECT count(*) FROM pieces p JOIN images i ON p.image_id = i.id WHERE i.scan_id = 1)" "1"
q "SELECT (SELECT count(*) FROM layer_runs) = (SELECT count(*) FROM layer_runs r JOIN layers l ON l.id = r.layer_id WHERE l.scan_id = 1)" "1"
q "SELECT count(*) > 0 FROM pieces" "1"
q "SELECT count(*) FROM images i WHERE i.scan_id = 2 AND i.map_image_id = i.reused_from" "7"
q "SELECT map_rows FROM scans WHERE id = 2" "$(sqlite3 db.sqlite 'SELECT map_rows FROM scans WHERE id = 1')"
dump db.sqlite > full.txt

# one overlay changes: only it is re-read
qemu-io -c 'write -P 9 3M 64k' s/vm/o2.qcow2 >/dev/null
scan; [ $? = 0 ] && ok || bad "third scan"
q "SELECT files_read, files_reused FROM scans WHERE id = 3" "1|7"
q "SELECT reused_from IS NULL FROM images i JOIN files f ON f.id = i.file_id WHERE i.scan_id = 3 AND f.path = '$WORK/s/vm/o2.qcow2'" "1"
q "SELECT count(*) FROM v_map WHERE path = '$WORK/s/vm/o2.qcow2' AND start <= 3145728 AND start + length > 3145728 AND depth = 0 AND data = 1" "1"

# the base changes: every image above it is re-read, the raw chain is not
qemu-io -c 'write -P 8 2M 64k' s/base/b.qcow2 >/dev/null
scan; [ $? = 0 ] && ok || bad "fourth scan"
q "SELECT files_read, files_reused FROM scans WHERE id = 4" "5|3"

# carried-over rows equal a full scan's
python3 "$SOURCE_DIR/tests/scripts/scan_vmap_check.py" db.sqlite "$IMGAUDIT" --min 7 >/dev/null && ok || bad "v_map after incremental scans"
dump db.sqlite > incremental.txt
IMGAUDIT_NO_INCREMENTAL=1 "$IMGAUDIT" scan --db full.sqlite --quiet s
dump full.sqlite > fresh.txt
diff incremental.txt fresh.txt >/dev/null && ok || { bad "incremental views differ from a fresh scan"; diff incremental.txt fresh.txt | head; }
# --full reads everything again, and gives the same views
"$IMGAUDIT" scan --db db.sqlite --quiet --full s
q "SELECT files_read, files_reused FROM scans WHERE id = 5" "8|0"
dump db.sqlite > forced.txt
diff incremental.txt forced.txt >/dev/null && ok || bad "--full views differ"
# history is kept
q "SELECT count(*), sum(status = 'complete') FROM scans" "5|5"

# what a file is depends on the images that use it: with the raw chain and
# the image keeping its data in d.data removed, r.bin and d.data are plain
# files again, as a fresh scan says (only d.data is read again: a former
# data file may be a VMDK extent that is an image of its own)
(cd s/vm && qemu-img create -q -f qcow2 -o data_file=d.data,data_file_raw=on ext.qcow2 1M)
scan; [ $? = 0 ] && ok || bad "scan with ext.qcow2"
q "SELECT sf.kind FROM scan_files sf JOIN files f ON f.id = sf.file_id WHERE sf.scan_id = 6 AND f.path = '$WORK/s/vm/d.data'" "data-file"
scan
q "SELECT files_read FROM scans WHERE id = 7" "0"
q "SELECT sf.kind, sf.reused FROM scan_files sf JOIN files f ON f.id = sf.file_id WHERE sf.scan_id = 7 AND f.path IN ('$WORK/s/vm/d.data', '$WORK/s/base/r.bin') ORDER BY f.path" "$(printf 'image|1\ndata-file|1')"
rm s/vm/onraw.qcow2 s/vm/ext.qcow2
scan; [ $? = 0 ] && ok || bad "scan after removals"
q "SELECT files_read FROM scans WHERE id = 8" "1" # d.data, no longer a data file, is probed again
q "SELECT count(*) FROM v_images WHERE path = '$WORK/s/base/r.bin'" "0"
q "SELECT path, kind FROM v_entries WHERE path IN ('$WORK/s/base/r.bin', '$WORK/s/vm/d.data') ORDER BY path" \
	"$(printf 's/base/r.bin|not-an-image\ns/vm/d.data|not-an-image')"
dump db.sqlite > incremental.txt
rm -f full.sqlite; "$IMGAUDIT" scan --db full.sqlite --quiet s
dump full.sqlite > fresh.txt
diff incremental.txt fresh.txt >/dev/null && ok || { bad "views after removals differ from a fresh scan"; diff incremental.txt fresh.txt | head; }

# an archive skipped under --no-archives is opened by the next scan without it
tar cf s/vm.tar -C s/vm o1.qcow2
age s
"$IMGAUDIT" scan --db db.sqlite --quiet --no-archives s
q "SELECT reason FROM v_entries WHERE path = '$WORK/s/vm.tar'" "an archive, not opened (--no-archives)"
"$IMGAUDIT" scan --db db.sqlite --quiet --no-archives s
q "SELECT files_read FROM scans WHERE id = 10" "0"
scan
q "SELECT count(*) FROM v_images WHERE path = '$WORK/s/vm.tar!o1.qcow2'" "1"
q "SELECT count(*) FROM v_entries WHERE path = '$WORK/s/vm.tar'" "0"

# results of another imgaudit version are not carried over
sqlite3 db.sqlite "UPDATE scans SET tool_version = '0.0.1-old' WHERE id = 11"
scan
q "SELECT files_read, files_reused FROM scans WHERE id = 12" "9|0"

# a chain reaching beneath an --allow-root directory is carried over while
# that file is unchanged, and read again when it changes
mkdir -p ar/s ar/lib
qemu-img create -q -f qcow2 ar/lib/base.qcow2 1M
qemu-io -c 'write -P 1 0 64k' ar/lib/base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b ../lib/base.qcow2 -F qcow2 ar/s/o.qcow2
ars() { age ar && (cd ar && "$IMGAUDIT" scan --db ar.sqlite --quiet --allow-root lib s); }
ars; [ $? = 0 ] && ok || bad "allow-root scan"
qa() { local got; got=$(command sqlite3 ar/ar.sqlite "$1" 2>&1 | sed "s|$WORK/ar/||g"); [ "$got" == "$2" ] && ok || { bad "$1"; echo "    expected: $2"; echo "    got:      $got"; }; }
qa "SELECT status FROM v_images" "ok"
qa "SELECT mtime_ns > 0 AND ctime_ns > 0 FROM files WHERE path = '$WORK/ar/lib/base.qcow2'" "1"
ars
qa "SELECT files_read, files_reused FROM scans WHERE id = 2" "0|1"
qemu-io -c 'write -P 2 64k 64k' ar/lib/base.qcow2 >/dev/null
ars
qa "SELECT files_read, files_reused FROM scans WHERE id = 3" "1|0"
qa "SELECT count(*) FROM v_map WHERE path = '$WORK/ar/s/o.qcow2' AND depth = 1 AND data = 1 AND start = 0 AND length = 131072" "1"
# v_links shows the references of a layer beneath --allow-root, once, under its own path
qemu-img create -q -f qcow2 -u -b gone.qcow2 -F qcow2 ar/lib/b2.qcow2 1M
qemu-img create -q -f qcow2 -u -b ../lib/b2.qcow2 -F qcow2 ar/s/p.qcow2 1M
qemu-img create -q -f qcow2 -u -b ../lib/b2.qcow2 -F qcow2 ar/s/q.qcow2 1M
ars
qa "SELECT path, backing, status FROM v_links ORDER BY path" "$(printf '%s\n' 'lib/b2.qcow2|gone.qcow2|missing' 's/o.qcow2|../lib/base.qcow2|ok' 's/p.qcow2|../lib/b2.qcow2|ok' 's/q.qcow2|../lib/b2.qcow2|ok')"
qa "SELECT path, status FROM v_images ORDER BY path" "$(printf '%s\n' 's/o.qcow2|ok' 's/p.qcow2|missing' 's/q.qcow2|missing')"
rm ar/lib/b2.qcow2 ar/s/p.qcow2 ar/s/q.qcow2

# a database kept inside the scanned tree is not scanned itself (nor its
# -wal, -shm and .lock files): no not-an-image noise, nothing re-read
"$IMGAUDIT" scan --db ar/s/in.sqlite --quiet ar/s
"$IMGAUDIT" scan --db ar/s/in.sqlite --quiet ar/s
[ "$(sqlite3 ar/s/in.sqlite "SELECT count(*) FROM files WHERE path LIKE '%in.sqlite%'")" = 0 ] && ok || bad "the database scanned itself"
[ "$(sqlite3 ar/s/in.sqlite "SELECT files_seen, files_read FROM scans WHERE id = 2")" = "1|1" ] && ok || bad "database inside the tree: $(sqlite3 ar/s/in.sqlite "SELECT files_seen, files_read FROM scans")"

# the sparse extent of a twoGbMaxExtentSparse VMDK cannot be opened alone: it
# is the descriptor's data file (walked, and inside an archive), not a corrupt
# image; once the descriptor is gone it is read again and reported
mkdir -p vm2
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse vm2/split.vmdk 4M
qemu-io -c 'write -P 1 0 64k' vm2/split.vmdk >/dev/null
tar -cf vm2/split.tar -C vm2 split.vmdk split-s001.vmdk
age vm2
qv() { local got; got=$(sqlite3 vm2.sqlite "$1" 2>&1 | rel); [ "$got" == "$2" ] && ok || { bad "$1"; echo "    expected: $2"; echo "    got:      $got"; }; }
"$IMGAUDIT" scan --db vm2.sqlite --quiet vm2; rc=$?
[ $rc = 0 ] && ok || bad "split VMDK scan: exit $rc"
qv "SELECT path, status FROM v_images ORDER BY path" "$(printf 'vm2/split.tar!split.vmdk|ok\nvm2/split.vmdk|ok')"
qv "SELECT sf.kind FROM scan_files sf JOIN files f ON f.id = sf.file_id WHERE f.path IN ('$WORK/vm2/split-s001.vmdk', '$WORK/vm2/split.tar!split-s001.vmdk')" "$(printf 'data-file\ndata-file')"
qv "SELECT count(*) FROM v_map WHERE path = '$WORK/vm2/split.vmdk' AND file = '$WORK/vm2/split-s001.vmdk' AND data = 1" "1"
"$IMGAUDIT" scan --db vm2.sqlite --quiet vm2
qv "SELECT files_read FROM scans WHERE id = 2" "0"
rm vm2/split.vmdk
"$IMGAUDIT" scan --db vm2.sqlite --quiet vm2; rc=$?
[ $rc = 1 ] && ok || bad "a lone VMDK extent: exit $rc (expected 1)"
qv "SELECT status FROM v_images WHERE path = '$WORK/vm2/split-s001.vmdk'" "corrupt"

# a root given twice still lets the next identical scan carry files over
mkdir -p dup
qemu-img create -q -f qcow2 dup/a.qcow2 1M
age dup
"$IMGAUDIT" scan --db dup.sqlite --quiet dup dup
"$IMGAUDIT" scan --db dup.sqlite --quiet dup dup
[ "$(sqlite3 dup.sqlite "SELECT files_read, files_reused FROM scans WHERE id = 2")" = "0|1" ] && ok || bad "duplicate roots: $(sqlite3 dup.sqlite "SELECT files_read, files_reused FROM scans")"
"$IMGAUDIT" scan --db dup.sqlite --quiet dup
[ "$(sqlite3 dup.sqlite "SELECT files_read FROM scans WHERE id = 3")" = "1" ] && ok || bad "other roots must read again"

# a finding in a shared base is recorded once, whether the images that meet
# it are carried over or read again (as in a fresh scan)
mkdir -p fnd
qemu-img create -q -f qcow2 fnd/b.qcow2 1M
qemu-io -c 'write -P 1 0 64k' fnd/b.qcow2 >/dev/null
python3 - fnd/b.qcow2 <<'PY'
import struct, sys
# Set a reserved bit (bit 5) in the first L2 entry: a 'reserved-bits' finding.
with open(sys.argv[1], "r+b") as f:
    h = f.read(72)
    f.seek(struct.unpack(">Q", h[40:48])[0])
    l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
    f.seek(l2); e = struct.unpack(">Q", f.read(8))[0]
    f.seek(l2); f.write(struct.pack(">Q", e | (1 << 5)))
PY
for i in 1 2 3; do qemu-img create -q -f qcow2 -b b.qcow2 -F qcow2 fnd/o$i.qcow2; done
age fnd
"$IMGAUDIT" scan --db fnd.sqlite --quiet fnd
touch fnd/o2.qcow2
age fnd
"$IMGAUDIT" scan --db fnd.sqlite --quiet fnd
[ "$(sqlite3 fnd.sqlite "SELECT files_read, files_reused FROM scans WHERE id = 2")" = "1|3" ] && ok || bad "findings store: $(sqlite3 fnd.sqlite "SELECT files_read, files_reused FROM scans")"
[ "$(sqlite3 fnd.sqlite "SELECT path, code FROM v_findings" | rel)" = "fnd/b.qcow2|reserved-bits" ] && ok || bad "findings after an incremental scan: $(sqlite3 fnd.sqlite "SELECT * FROM v_findings")"

# Racily clean: a write landing within the file system's timestamp
# granularity after the scan's stat leaves the identity as it was.  A file
# modified within 2 s before a scan began is therefore read again by the next
# scan, and trusted once a scan begins later than that.
mkdir -p racy
qemu-img create -q -f qcow2 racy/old.qcow2 1M
age racy
qemu-img create -q -f qcow2 racy/new.qcow2 1M
rs() { "$IMGAUDIT" scan --db racy.sqlite --quiet racy; sqlite3 racy.sqlite "SELECT files_read || '|' || files_reused FROM scans ORDER BY id DESC LIMIT 1"; }
[ "$(rs)" = "2|0" ] && ok || bad "racy: first scan"
[ "$(rs)" = "1|1" ] && ok || bad "racy: the fresh file must be read again"
[ "$(sqlite3 racy.sqlite "SELECT count(DISTINCT file_id) FROM scan_files sf JOIN files f ON f.id = sf.file_id WHERE f.path = '$WORK/racy/new.qcow2'")" = 1 ] && ok || bad "racy: an unchanged identity keeps its files row"
sleep 3
rs >/dev/null
[ "$(rs)" = "0|2" ] && ok || bad "racy: a settled file is carried over"
# the same for a layer of a chain: an overlay whose base was just written
qemu-img create -q -f qcow2 -b old.qcow2 -F qcow2 racy/o.qcow2
age racy/o.qcow2
qemu-io -c 'write -P 1 0 64k' racy/old.qcow2 >/dev/null
rs >/dev/null
[ "$(rs)" = "2|1" ] && ok || bad "racy: an image whose base is fresh must be read again"

# The window is measured from the scan's start to the nanosecond
# (scans.started_ns), not the second: a file written 2.1 s before the
# previous scan began is trusted, one written 1.8 s before is read again.
mkdir -p racy2
qemu-img create -q -f qcow2 racy2/a.qcow2 1M
qemu-img create -q -f qcow2 racy2/b.qcow2 1M
t=$(($(date +%s) - 600))
touch -m -d "@$t.000000000" racy2/a.qcow2
touch -m -d "@$t.300000000" racy2/b.qcow2
"$IMGAUDIT" scan --db racy2.sqlite --quiet racy2
# as if that scan had begun 2.1 s after a was written
sqlite3 racy2.sqlite "UPDATE scans SET started_ns = ${t}000000000 + 2100000000"
"$IMGAUDIT" scan --db racy2.sqlite --quiet racy2
[ "$(sqlite3 racy2.sqlite "SELECT files_read || '|' || files_reused FROM scans ORDER BY id DESC LIMIT 1")" = "1|1" ] && ok || bad "racy: the window is not measured to the nanosecond"
[ "$(sqlite3 racy2.sqlite "SELECT f.path FROM scan_files sf JOIN files f ON f.id = sf.file_id WHERE sf.scan_id = 2 AND sf.reused = 0" | rel)" = "racy2/b.qcow2" ] && ok || bad "racy: the file 1.8 s before the start is the one read again"

lib_summary test_scan_incremental
