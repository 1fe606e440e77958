#!/bin/bash
# The store survives: a scan killed with SIGKILL mid-way leaves the previous
# complete scan intact and queryable, and the next run marks it aborted; a
# second concurrent scan of one database is refused (exit 3, naming the
# holder); a damaged or foreign database is refused (exit 3) and left
# untouched; a full disk aborts the scan with exit 3.
. "$(dirname "$0")/lib.sh"
lib_workdir scan
BG=
lib_on_exit() {
	[ -n "$BG" ] && kill -9 "$BG" 2>/dev/null
	mountpoint -q "$WORK/full" 2>/dev/null && umount "$WORK/full"
}
q() { sql_eq db.sqlite "$1" "$2"; }

mkdir -p s
qemu-img create -q -f qcow2 s/base.qcow2 4M
qemu-io -c 'write -P 1 0 64k' s/base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 s/o.qcow2
qemu-io -c 'write -P 2 1M 64k' s/o.qcow2 >/dev/null
for i in $(seq 1 60); do cp s/o.qcow2 s/o$i.qcow2; done

"$IMGAUDIT" scan --db db.sqlite --quiet s; [ $? = 0 ] && ok || bad "first scan"
q "SELECT count(*) FROM v_images" "62"
before=$(sqlite3 db.sqlite "SELECT * FROM v_images ORDER BY path; SELECT count(*) FROM v_map")

# a slow scan (a test-only writer delay), killed mid-way
touch s/o1.qcow2 # changed identity: re-read
IMGAUDIT_NO_INCREMENTAL=1 IMGAUDIT_TEST_WRITER_DELAY_MS=20 "$IMGAUDIT" scan --db db.sqlite --quiet s &
BG=$!
for _ in $(seq 50); do
	[ "$(sqlite3 db.sqlite "SELECT count(*) FROM scans WHERE status = 'running'" 2>/dev/null)" = 1 ] && break
	sleep 0.1
done
sleep 0.5
# a second scan while the first runs is refused and names the holder
"$IMGAUDIT" scan --db db.sqlite --quiet s 2>err.txt
rc=$?
[ $rc = 3 ] && ok || bad "concurrent scan exit status $rc (expected 3)"
grep -q "locked by another scan (pid $BG on host" err.txt && ok || { bad "lock message"; cat err.txt; }
# readers see only the complete scan while the other one writes
q "SELECT count(*) FROM v_images" "62"
kill -9 $BG
wait $BG 2>/dev/null
BG=
q "SELECT status FROM scans ORDER BY id" "$(printf 'complete\nrunning')"
[ "$(sqlite3 db.sqlite "SELECT * FROM v_images ORDER BY path; SELECT count(*) FROM v_map")" == "$before" ] && ok || bad "previous scan changed after SIGKILL"
q "SELECT count(*) > 0 FROM images WHERE scan_id = 2" "1"
q "PRAGMA integrity_check" "ok"
# The writer may commit an image's map rows and links before its images row;
# the kill can fall in between.  Make that case certain: rows of an image the
# dead scan never recorded.  Their image id must not be handed out again.
sqlite3 db.sqlite "INSERT INTO map SELECT (SELECT max(id) + 1 FROM images), start, length, depth, present, zero, data, compressed, offset, file_id FROM map WHERE image_id = (SELECT min(id) FROM images); INSERT INTO links (scan_id, image_id, depth, kind, name, status) VALUES (2, (SELECT max(id) + 2 FROM images), 0, 'backing', 'x', 'ok')"
# the next run marks the dead scan aborted and completes
"$IMGAUDIT" scan --db db.sqlite --quiet s 2>/dev/null; [ $? = 0 ] && ok || bad "scan after the kill"
q "SELECT status FROM scans ORDER BY id" "$(printf 'complete\naborted\ncomplete')"
q "SELECT count(*) FROM v_images" "62"
[ ! -s db.sqlite-wal ] && ok || bad "WAL not checkpointed after the scan"

# a damaged database is refused and left as it was
head -c 8192 /dev/urandom > junk.db
sum=$(md5sum < junk.db)
"$IMGAUDIT" scan --db junk.db --quiet s 2>err.txt; rc=$?
[ $rc = 3 ] && ok || bad "garbage database: exit $rc (expected 3)"
[ "$(md5sum < junk.db)" == "$sum" ] && ok || bad "garbage database was modified"
cp db.sqlite torn.db
python3 - torn.db <<'PY'
import sys
# Overwrite the middle of the file: pages of tables become garbage.
with open(sys.argv[1], "r+b") as f:
    f.seek(0, 2); n = f.tell()
    f.seek(100); f.write(b"\xff" * 200)   # the first page's b-tree header
PY
sum=$(md5sum < torn.db)
"$IMGAUDIT" scan --db torn.db --quiet s 2>err.txt; rc=$?
[ $rc = 3 ] && ok || { bad "corrupted database: exit $rc (expected 3)"; cat err.txt; }
[ "$(md5sum < torn.db)" == "$sum" ] && ok || bad "corrupted database was modified"
sqlite3 other.db "CREATE TABLE t (x); INSERT INTO t VALUES (1)"
"$IMGAUDIT" scan --db other.db --quiet s 2>/dev/null; [ $? = 3 ] && ok || bad "foreign database must be refused"

# a full disk aborts cleanly (needs a small tmpfs: skipped without mount rights).
# Room is left for the lock file and the scan row, so that the disk fills up
# while the scan's results are written: the scan is recorded as aborted with
# the reason, the previous one stays the latest complete scan.
mkdir full
if mount -t tmpfs -o size=2m tmpfs full 2>/dev/null; then
	"$IMGAUDIT" scan --db full/db.sqlite --quiet s 2>/dev/null
	aborted=0
	for spare in 40 60 80 100 120 160 200; do
		head -c ${spare}k /dev/zero > full/spare
		dd if=/dev/zero of=full/filler bs=4k 2>/dev/null # fill what is left
		rm full/spare
		IMGAUDIT_NO_INCREMENTAL=1 "$IMGAUDIT" scan --db full/db.sqlite --quiet s 2>err.txt; rc=$?
		rm -f full/filler
		[ $rc = 3 ] && ok || { bad "disk full ($spare KiB left): exit $rc (expected 3)"; cat err.txt; }
		grep -Eqi "disk is full|no space left" err.txt && ok || { bad "disk full message"; cat err.txt; }
		if [ "$(sqlite3 full/db.sqlite "SELECT count(*) FROM scans WHERE status = 'aborted' AND exit_status = 3 AND abort_reason LIKE '%full%'")" != 0 ]; then
			aborted=1
			break
		fi
	done
	[ $aborted = 1 ] && ok || bad "no scan was recorded as aborted by a full disk"
	[ "$(sqlite3 full/db.sqlite "SELECT count(*) FROM v_images")" = 62 ] && ok || bad "scan before the disk filled up lost"
	[ "$(sqlite3 full/db.sqlite "SELECT count(*) FROM scans WHERE status = 'complete'")" = 1 ] && ok || bad "a scan completed on a full disk"
	[ "$(sqlite3 full/db.sqlite "PRAGMA integrity_check")" = ok ] && ok || bad "integrity after a full disk"
	"$IMGAUDIT" scan --db full/db.sqlite --quiet s 2>/dev/null; [ $? = 0 ] && ok || bad "scan once there is room again"
	umount full
else
	echo "skip: cannot mount a tmpfs for the disk-full case"
fi

lib_summary test_scan_crash
