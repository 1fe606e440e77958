#!/bin/bash
# Incremental scans of archives: an archive whose path and identity are those
# of the previous complete scan, and whose recorded results only its bytes
# decide (schema/README.md, "Incremental scans"), is not read again: its
# members' images, maps, links, findings, entries and OVF disks carry over,
# nested archives with it.  A touched or rebuilt archive is read again; an
# archive with a member in error, or a chain refused for leaving it, is read
# at every scan.  The carried-over views must equal the first scan's and a
# fresh full scan's.  Also: `imgaudit scan` takes its default database from
# $IMGAUDIT_DB (--db wins).
. "$(dirname "$0")/lib.sh"
lib_workdir scan
q() { sql_eq db.sqlite "$1" "$2"; }
# Everything a scan shows, by path (ids differ between scans, paths do not).
dump() {
	sqlite3 "$1" "SELECT * FROM v_images ORDER BY path;
SELECT * FROM v_map ORDER BY path, start;
SELECT * FROM v_links ORDER BY path, backing;
SELECT * FROM v_findings ORDER BY path, code, message;
SELECT * FROM v_entries ORDER BY path, kind;
SELECT f.path, l.depth, l.kind, l.name, l.target_path, l.status, l.error, t.path
  FROM links l JOIN images i ON i.id = l.image_id JOIN files f ON f.id = i.file_id
  LEFT JOIN files t ON t.id = l.target_file_id
 WHERE l.scan_id = (SELECT id FROM v_latest_scan) ORDER BY 1, 2, 3, 4;
SELECT a.path, o.disk_id, o.href, o.capacity, o.format, m.path FROM ovf_disks o
  JOIN files a ON a.id = o.archive_file_id LEFT JOIN files m ON m.id = o.member_file_id
 WHERE o.scan_id = (SELECT id FROM v_latest_scan) ORDER BY 1, 2;
SELECT f.path, sf.kind FROM scan_files sf JOIN files f ON f.id = sf.file_id
 WHERE sf.scan_id = (SELECT id FROM v_latest_scan) ORDER BY 1;
SELECT f.path, i.format, i.format_probed, i.cluster_size, i.dirty, i.corrupt, i.backing_fmt
  FROM images i JOIN files f ON f.id = i.file_id
 WHERE i.scan_id = (SELECT id FROM v_latest_scan) ORDER BY 1"
}
# Files this test writes are made a minute old before a scan: a file modified
# within 2 s of a scan's start is read again by the next scan as well (it may
# be racily clean; test_scan_incremental.sh tests that).
age() { find "$@" -type f -newermt '5 seconds ago' ! -name '*.sqlite*' -exec touch -m -d "@$(($(date +%s) - 60))" {} +; }
scan() { age s && "$IMGAUDIT" scan --db db.sqlite --quiet s; }
last() { sqlite3 db.sqlite "SELECT $1 FROM scans ORDER BY id DESC LIMIT 1"; }
# "path reused" for the top-level files of the latest scan
tops() {
	sqlite3 db.sqlite "SELECT f.path, sf.reused FROM scan_files sf JOIN files f ON f.id = sf.file_id
 WHERE sf.scan_id = (SELECT max(id) FROM scans) AND f.archive_id IS NULL ORDER BY 1" | rel | tr '\n' ' '
}
# v_map of a member equals `imgaudit map` of the extracted file
member_map() { # ARCHIVE MEMBER EXTRACTED
	local want got
	want=$(cd "$(dirname "$3")" && "$IMGAUDIT" map --output=json "$(basename "$3")" | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    print(e["start"], e["length"], e["depth"], int(e["present"]), int(e["zero"]), int(e["data"]), int(e["compressed"]), e.get("offset") is not None)')
	got=$(sqlite3 -separator ' ' db.sqlite "SELECT start, length, depth, present, zero, data, compressed, offset IS NOT NULL FROM v_map WHERE path = '$WORK/s/$1!$2' ORDER BY start" | sed 's/ 1$/ True/; s/ 0$/ False/')
	[ -n "$want" ] && [ "$got" == "$want" ] && ok || { bad "v_map of $1!$2"; diff <(echo "$want") <(echo "$got") | head -5; }
}

mkdir -p src/sub s
cd src
qemu-img create -q -f qcow2 base.qcow2 4M
qemu-io -c 'write -P 1 0 128k' -c 'write -z 1M 64k' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 over.qcow2
qemu-io -c 'write -P 2 64k 64k' over.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b ../over.qcow2 -F qcow2 sub/over2.qcow2
qemu-io -c 'write -P 3 2M 64k' sub/over2.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b nothere.qcow2 -F qcow2 -u lost.qcow2 4M
qemu-img create -q -f qcow2 -b ../../etc/passwd -F raw -u escape.qcow2 4M
head -c 512 base.qcow2 > broken.qcow2 # a qcow2 header whose tables are past the end
echo "just text" > notes.txt
ln -s base.qcow2 link.qcow2
cat > vm.ovf <<'OVF'
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="over.qcow2" ovf:id="file1"/></References>
  <DiskSection>
    <Disk ovf:capacity="4" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.qemu.org/qcow2"/>
  </DiskSection>
</Envelope>
OVF
# fine: chains inside, a missing member backing, a symlink member, a plain member
# twice (an archive finding: member-duplicate)
mk_t() { tar -cf ../s/t.tar base.qcow2 over.qcow2 sub lost.qcow2 notes.txt link.qcow2 && tar -rf ../s/t.tar notes.txt; }
mk_t
tar -czf ../s/c.tar.gz base.qcow2 over.qcow2 sub
python3 - ../s/d.zip <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.write("base.qcow2", compress_type=zipfile.ZIP_STORED)
    z.write("over.qcow2", compress_type=zipfile.ZIP_DEFLATED)
    z.write("sub/over2.qcow2", compress_type=zipfile.ZIP_DEFLATED)
PY
tar -cf ../s/vm.ova vm.ovf over.qcow2 base.qcow2
tar -cf inner.tar base.qcow2 over.qcow2
tar -cf ../s/outer.tar inner.tar notes.txt
# read at every scan: a member in error; a chain refused for leaving the archive
tar -cf ../s/bad.tar base.qcow2 broken.qcow2
tar -cf ../s/esc.tar base.qcow2 escape.qcow2
cd ..
qemu-img create -q -f qcow2 s/plain.qcow2 1M
ARCHIVES="s/bad.tar s/c.tar.gz s/d.zip s/esc.tar s/outer.tar s/t.tar s/vm.ova"

# 1. first scan: everything read
scan
rc1=$?
[ $rc1 = 1 ] && ok || bad "first scan exit status $rc1 (expected 1: bad.tar!broken.qcow2)"
q "SELECT files_read, files_reused FROM scans WHERE id = 1" "8|0"
q "SELECT status FROM v_images WHERE path = '$WORK/s/bad.tar!broken.qcow2'" "corrupt"
q "SELECT status FROM v_images WHERE path = '$WORK/s/esc.tar!escape.qcow2'" "outside-archive"
q "SELECT status FROM v_images WHERE path = '$WORK/s/t.tar!lost.qcow2'" "missing"
q "SELECT status, chain_depth FROM v_images WHERE path = '$WORK/s/outer.tar!inner.tar!over.qcow2'" "ok|1"
q "SELECT code FROM v_findings WHERE path = '$WORK/s/t.tar!notes.txt'" "member-duplicate"
dump db.sqlite > first.txt
imgs1=$(last images)
maprows1=$(last map_rows)

# 2. unchanged: the fine archives and the plain image are carried over, bad.tar and esc.tar read
scan
rc=$?
[ $rc = $rc1 ] && ok || bad "second scan exit status $rc (expected $rc1)"
q "SELECT files_read, files_reused, status FROM scans WHERE id = 2" "2|6|complete"
[ "$(tops)" == "s/bad.tar|0 s/c.tar.gz|1 s/d.zip|1 s/esc.tar|0 s/outer.tar|1 s/plain.qcow2|1 s/t.tar|1 s/vm.ova|1 " ] && ok ||
	bad "reused flags after an unchanged rescan: $(tops)"
q "SELECT count(*) FROM images i JOIN files f ON f.id = i.file_id WHERE i.scan_id = 2 AND f.path LIKE '$WORK/s/t.tar!%' AND i.reused_from IS NULL" "0"
q "SELECT count(*) FROM images i JOIN files f ON f.id = i.file_id WHERE i.scan_id = 2 AND f.path LIKE '$WORK/s/outer.tar!inner.tar!%' AND i.reused_from IS NOT NULL" "2"
q "SELECT count(*) FROM images i JOIN files f ON f.id = i.file_id WHERE i.scan_id = 2 AND f.path LIKE '$WORK/s/bad.tar!%' AND i.reused_from IS NOT NULL" "0"
q "SELECT count(*) FROM files WHERE path = '$WORK/s/t.tar!over.qcow2'" "1"
[ "$(last images)" = "$imgs1" ] && ok || bad "images counter $(last images), expected $imgs1"
[ "$(last map_rows)" = "$maprows1" ] && ok || bad "map_rows counter $(last map_rows), expected $maprows1"
dump db.sqlite > second.txt
diff first.txt second.txt >/dev/null && ok || { bad "carried-over views differ from the first scan's"; diff first.txt second.txt | head -20; }
# and again: a carried-over scan carries over
scan
q "SELECT files_read, files_reused FROM scans WHERE id = 3" "2|6"
dump db.sqlite > third.txt
diff first.txt third.txt >/dev/null && ok || { bad "second carry-over differs"; diff first.txt third.txt | head -20; }

# 3. touched (mtime changed, content the same): only that archive is read again
touch -d '2001-02-03 04:05:06' s/t.tar
scan
q "SELECT files_read, files_reused FROM scans WHERE id = 4" "3|5"
[ "$(tops)" == "s/bad.tar|0 s/c.tar.gz|1 s/d.zip|1 s/esc.tar|0 s/outer.tar|1 s/plain.qcow2|1 s/t.tar|0 s/vm.ova|1 " ] && ok ||
	bad "reused flags after touching t.tar: $(tops)"
q "SELECT count(*) FROM images i JOIN files f ON f.id = i.file_id WHERE i.scan_id = 4 AND f.path LIKE '$WORK/s/t.tar!%' AND i.reused_from IS NOT NULL" "0"
dump db.sqlite > touched.txt
diff first.txt touched.txt >/dev/null && ok || { bad "views after touching t.tar differ"; diff first.txt touched.txt | head -20; }

# 4. a member replaced (the tar rebuilt): read again, the new map is visible
qemu-io -c 'write -P 7 3M 64k' src/over.qcow2 >/dev/null
(cd src && mk_t)
scan
q "SELECT files_read, files_reused FROM scans WHERE id = 5" "3|5"
q "SELECT count(*) FROM v_map WHERE path = '$WORK/s/t.tar!over.qcow2' AND start <= 3145728 AND start + length > 3145728 AND depth = 0 AND data = 1" "1"
q "SELECT count(*) FROM v_map WHERE path = '$WORK/s/c.tar.gz!over.qcow2' AND start <= 3145728 AND start + length > 3145728 AND depth = 0 AND data = 1" "0"
for m in base.qcow2 over.qcow2 sub/over2.qcow2; do member_map t.tar "$m" "src/$m"; done

# 5. unchanged again: t.tar carried over with its new rows; members still equal `imgaudit map`
scan
q "SELECT files_read, files_reused FROM scans WHERE id = 6" "2|6"
q "SELECT count(*) FROM v_map WHERE path = '$WORK/s/t.tar!over.qcow2' AND start <= 3145728 AND start + length > 3145728 AND depth = 0 AND data = 1" "1"
for m in base.qcow2 over.qcow2 sub/over2.qcow2; do member_map t.tar "$m" "src/$m"; done
mkdir -p x && (cd x && tar -xf ../src/inner.tar)
for m in base.qcow2 over.qcow2; do member_map outer.tar "inner.tar!$m" "x/$m"; done
q "SELECT count(*) FROM v_findings WHERE path LIKE '$WORK/s/bad.tar!%'" "$(sqlite3 db.sqlite "SELECT count(*) FROM findings x JOIN files f ON f.id = x.file_id WHERE x.scan_id = 1 AND f.path LIKE '$WORK/s/bad.tar!%'")"

# 6. the incremental views equal a fresh full scan's
dump db.sqlite > incremental.txt
IMGAUDIT_NO_INCREMENTAL=1 "$IMGAUDIT" scan --db full.sqlite --quiet s
q "SELECT files_reused FROM scans WHERE id = 6" "6"
dump full.sqlite > fresh.txt
diff incremental.txt fresh.txt >/dev/null && ok || { bad "incremental views differ from a fresh scan"; diff incremental.txt fresh.txt | head -20; }

# 7. --no-archives is not served from carried-over archives
"$IMGAUDIT" scan --db db.sqlite --quiet --no-archives s
q "SELECT count(*) FROM v_images WHERE path LIKE '%!%'" "0"
q "SELECT count(*) FROM images WHERE scan_id = 7 AND reused_from IS NOT NULL" "1"

# 8. IMGAUDIT_DB: the default database; --db wins; empty means ./imgaudit.db
mkdir envtest && cd envtest
IMGAUDIT_DB=env.sqlite "$IMGAUDIT" scan --quiet ../s/plain.qcow2
[ -f env.sqlite ] && [ ! -e imgaudit.db ] && ok || bad "IMGAUDIT_DB not used"
[ "$(sqlite3 env.sqlite "SELECT count(*) FROM v_images")" = 1 ] && ok || bad "IMGAUDIT_DB scan content"
IMGAUDIT_DB=env.sqlite "$IMGAUDIT" scan --db cli.sqlite --quiet ../s/plain.qcow2
[ -f cli.sqlite ] && [ "$(sqlite3 env.sqlite "SELECT count(*) FROM scans")" = 1 ] && ok || bad "--db does not win over IMGAUDIT_DB"
IMGAUDIT_DB= "$IMGAUDIT" scan --quiet ../s/plain.qcow2
[ -f imgaudit.db ] && ok || bad "empty IMGAUDIT_DB is not ./imgaudit.db"
IMGAUDIT_DB=env.sqlite "$IMGAUDIT" report --format=json | grep -q '"schema_version"' && ok || bad "report with IMGAUDIT_DB"
"$IMGAUDIT" scan --help | grep -q 'IMGAUDIT_DB' && ok || bad "scan usage does not mention IMGAUDIT_DB"
cd ..

lib_summary test_scan_incremental_archives
