#!/bin/bash
# The walk (issue 10): every walked file is opened by its name relative to
# its directory's descriptor, once; a file that is not an image costs a files
# row and a scan_files row, no entries row (schema 6), and v_entries still
# lists it; hard links and a file root inside a directory root are still met
# once; an image 40 directories of 255-byte names deep (a path of 10 KiB) is
# scanned; every directory's on-disk total in v_dir_usage is `du -B1` of it
# (an archive by its own blocks, its members adding nothing); schema 6
# migrates a schema-4 store with history; a limit of 24 descriptors (hard or
# soft) changes nothing recorded.
. "$(dirname "$0")/lib.sh"
lib_workdir walk
export WORK
q() { sqlite3 "$DB" "$1" | rel; } # stored paths are absolute: "$WORK/" taken out

# ---- small files, hard links, a file root inside a directory root ----
mkdir -p s/a/b s/c
for i in $(seq 1 50); do printf 'line %d\n' "$i" >"s/a/b/f$i.txt"; done
: >s/c/empty
printf 'x' >s/c/one-byte
qemu-img create -q -f qcow2 s/c/disk.qcow2 16M
ln s/a/b/f1.txt s/c/link.txt
find s -type f -exec touch -m -d "@$(($(date +%s) - 3600))" {} + # not racily clean
DB=$WORK/a.db
"$IMGAUDIT" scan --db "$DB" --quiet s s/c/disk.qcow2
eq "exit status" "$?" "0"
eq "files" "$(q "SELECT count(*) FROM files")" "53"
eq "images" "$(q "SELECT count(*) FROM v_images")" "1"
eq "not images in v_entries" "$(q "SELECT count(*) FROM v_entries WHERE kind = 'not-an-image'")" "52"
eq "no entries rows for them" "$(q "SELECT count(*) FROM entries WHERE kind = 'not-an-image'")" "0"
eq "scan_files rows" "$(q "SELECT kind || ' ' || count(*) FROM scan_files GROUP BY kind ORDER BY kind")" \
	"$(printf 'image 1\nnot-an-image 52')"
eq "hard link met once" "$(q "SELECT kind || ' ' || detail FROM v_entries WHERE path = '$WORK/s/c/link.txt'")" \
	"hardlink s/a/b/f1.txt"
eq "file root met once" "$(q "SELECT kind || ' ' || detail FROM v_entries WHERE path = '$WORK/s/c/disk.qcow2'")" \
	"hardlink s/c/disk.qcow2"
eq "v_not_images" "$(q "SELECT reason FROM v_not_images WHERE path = '$WORK/s/c/empty'")" "no driver recognises it"
"$IMGAUDIT" scan --db "$DB" --quiet --json s s/c/disk.qcow2 >second.json
eq "rescan reads nothing" "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["files_read"], d["files_reused"])' second.json)" "0 53"
eq "rescan's not images" "$(q "SELECT count(*) FROM v_entries WHERE kind = 'not-an-image'")" "52"

# ---- honest totals: every directory's on-disk total is du's ----
mkdir -p t/vms/old t/backup t/empty
qemu-img create -q -f qcow2 t/vms/a.qcow2 64M && qemu-io -c 'write -P 1 0 1M' t/vms/a.qcow2 >/dev/null
truncate -s 32M t/vms/sparse.img
head -c 300000 /dev/urandom >t/vms/old/notes.bin
qemu-img create -q -f qcow2 member.qcow2 1G && qemu-io -c 'write -P 2 0 4M' member.qcow2 >/dev/null
tar -czf t/backup/disk.tar.gz member.qcow2 && rm member.qcow2
printf 'small\n' >t/backup/readme
DB=$WORK/t.db
"$IMGAUDIT" scan --db "$DB" --quiet t
eq "totals: exit status" "$?" "0"
eq "totals: the member's image" "$(q "SELECT allocated_bytes FROM v_images WHERE path = '$WORK/t/backup/disk.tar.gz!member.qcow2'")" "0"
eq "totals: directories" "$(q "SELECT count(*) FROM v_dir_usage")" "$(find t -type d | wc -l)"
while IFS='|' read -r d a; do
	eq "du -B1 $d" "$a" "$(du -B1 -s "$d" | cut -f1)"
done < <(q "SELECT path, allocated_bytes FROM v_dir_usage ORDER BY path")
eq "totals: files of t" "$(q "SELECT files FROM v_dir_usage WHERE path = '$WORK/t'")" "5"

# ---- 40 levels of 255-byte names ----
python3 - <<'PY'
import os, subprocess
os.mkdir("deep")
os.chdir("deep")
p = "deep"
for i in range(40):
    name = ("a" if i % 2 == 0 else "b") * 255
    os.mkdir(name)
    os.chdir(name)  # one component at a time: the whole path is longer than PATH_MAX
    p += "/" + name
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "d.qcow2", "8M"], check=True)
subprocess.run(["qemu-io", "-c", "write -P 7 0 64k", "d.qcow2"], check=True, stdout=subprocess.DEVNULL)
with open("r.img", "wb") as f:
    f.truncate(4 << 20)
with open(os.environ["WORK"] + "/deeppath.txt", "w") as f:
    f.write(p)
PY
DEEP=$(cat deeppath.txt)
DB=$WORK/deep.db
"$IMGAUDIT" scan --db "$DB" --quiet deep
eq "deep: exit status" "$?" "0"
eq "deep: images" "$(q "SELECT format || ' ' || status || ' ' || length(path) FROM v_images ORDER BY path")" \
	"$(printf 'qcow2 ok %d\nraw ok %d' $((${#WORK} + 1 + ${#DEEP} + 8)) $((${#WORK} + 1 + ${#DEEP} + 6)))"
eq "deep: mapped" "$(q "SELECT own_data_bytes FROM images i JOIN files f ON f.id = i.file_id WHERE f.path LIKE '%/d.qcow2'")" "65536"

# ---- one stat a file: identities taken at the open ----
# The walk stats no regular file the previous scan did not have: each file's
# identity comes from its open.  A backing file named by a path outside the
# roots that is a hard link of a walked file is still that walked file; two
# names of one file inside the root are met once; a rescan reuses them all.
mkdir -p h/s h/out
head -c 1048576 /dev/urandom >h/out/base.raw
ln h/out/base.raw h/s/zbase.raw
qemu-img create -q -f qcow2 -b "$WORK/h/out/base.raw" -F raw h/s/a.qcow2
for i in 1 2 3; do printf 'text %d\n' "$i" >"h/s/t$i.txt"; done
ln h/s/t2.txt h/s/b-link.txt
find h -type f -exec touch -m -d "@$(($(date +%s) - 3600))" {} +
DB=$WORK/h.db
"$IMGAUDIT" scan --db "$DB" --quiet --allow-root h/out h/s
eq "lazy: exit status" "$?" "0"
eq "lazy: backing through an outside hard link" \
	"$(q "SELECT target_path || ' ' || status FROM v_links WHERE path = '$WORK/h/s/a.qcow2'")" "h/s/zbase.raw ok"
eq "lazy: hard link in walk order" "$(q "SELECT kind || ' ' || detail FROM v_entries WHERE path = '$WORK/h/s/t2.txt'")" \
	"hardlink h/s/b-link.txt"
eq "lazy: identities" "$(q "SELECT count(*) FROM files WHERE ino IS NOT NULL AND mtime_ns IS NOT NULL AND size > 0")" "5"
eq "lazy: sizes" "$(q "SELECT size FROM files WHERE path = '$WORK/h/s/t3.txt'")" "7"
"$IMGAUDIT" scan --db "$DB" --quiet --json --allow-root h/out h/s >lazy.json
eq "lazy: rescan reads nothing" "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["files_read"], d["files_reused"])' lazy.json)" "0 5"

# ---- files whose first bytes are not in memory ----
# On a cold cache a worker starts the read of each file's first bytes and
# probes it later (scan_run.c: worker_main's window).  A store whose pages
# were dropped from the page cache (dd iflag=nocache, POSIX_FADV_DONTNEED)
# must be recorded exactly as the same store read warm: every file's kind,
# every image's format, sizes, chain and map.
mkdir -p c/plain c/vms
for i in $(seq 1 300); do printf 'note %d\n' "$i" >"c/plain/n$i.txt"; done
qemu-img create -q -f qcow2 c/vms/base.qcow2 64M && qemu-io -c 'write -P 7 1M 2M' c/vms/base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 c/vms/top.qcow2 && qemu-io -c 'write -P 8 0 64k' c/vms/top.qcow2 >/dev/null
qemu-img create -q -f vmdk -o subformat=monolithicFlat c/vms/flat.vmdk 8M
head -c 1048576 /dev/zero >c/vms/mbr.bin # a partition table: one entry of type 0x83
printf '\203' | dd of=c/vms/mbr.bin bs=1 seek=450 conv=notrunc status=none
printf '\125\252' | dd of=c/vms/mbr.bin bs=1 seek=510 conv=notrunc status=none
head -c 65536 /dev/urandom >c/vms/scratch.img # raw by its name
qemu-img create -q -f qcow2 member.qcow2 16M && tar -czf c/vms/backup.tar.gz member.qcow2 && rm member.qcow2
: >c/plain/empty
find c -type f -exec touch -m -d "@$(($(date +%s) - 3600))" {} +
listing() { # the rows to compare, paths relative to the root
	q "SELECT f.path || ' ' || sf.kind FROM scan_files sf JOIN files f ON f.id = sf.file_id ORDER BY f.path"
	q "SELECT path || ' ' || format || ' ' || virtual_size || ' ' || allocated_bytes || ' ' || chain_depth || ' ' || status FROM v_images ORDER BY path"
	q "SELECT path || ' ' || start || ' ' || length || ' ' || depth || ' ' || data || ' ' || zero || ' ' || coalesce(offset, '') FROM v_map ORDER BY path, start"
}
DB=$WORK/warm.db
"$IMGAUDIT" scan --db "$DB" --quiet c
eq "cold: warm scan's exit status" "$?" "0"
listing >warm.rows
# (a page still in another CPU's batch of new pages is not dropped: asked again, 20 times at most)
for try in $(seq 1 20); do
	sync
	find c -type f -exec dd if={} iflag=nocache count=0 status=none \;
	resident=$(find c -type f -size +0 -exec fincore -n -b -o RES {} + | awk '$1 > 0' | wc -l)
	[ "$resident" = 0 ] && break
	sleep 0.2
done
eq "cold: no file's pages left in memory" "$resident" "0"
DB=$WORK/cold.db
"$IMGAUDIT" scan --db "$DB" --quiet c
eq "cold: exit status" "$?" "0"
listing >cold.rows
eq "cold: rows" "$(diff warm.rows cold.rows && echo same)" "same"
eq "cold: what was recorded" "$(grep -c ' not-an-image$' cold.rows) $(grep -c ' qcow2 ' cold.rows) $(grep -c ' raw ' cold.rows)" \
	"301 3 2"

# ---- the scan writes no access time ----
# Files are opened with O_NOATIME where the process may (root, or the
# owner): an image read by the nightly scan keeps its access time, which
# relatime would otherwise move forward once a day.
mkdir -p at
qemu-img create -q -f qcow2 at/disk.qcow2 16M
printf 'notes\n' >at/notes.txt
touch -a -d '3 days ago' at/disk.qcow2 at/notes.txt
before=$(stat -c %X at/disk.qcow2 at/notes.txt | tr '\n' ' ')
DB=$WORK/at.db
"$IMGAUDIT" scan --db "$DB" --quiet --full at
eq "atime: exit status" "$?" "0"
eq "atime: read" "$(q "SELECT count(*) FROM v_images")" "1"
eq "atime: unchanged" "$(stat -c %X at/disk.qcow2 at/notes.txt | tr '\n' ' ')" "$before"

# ---- few descriptors ----
# 300 directories nested up to 12 deep, and a qcow2 chain, scanned under a
# limit of 24 descriptors: hard (ulimit -n: the walk keeps none of the
# directories open, its files are opened by their path beneath the root, the
# workers get no window) and soft only (ulimit -Sn: raised to the hard limit
# at the start).  Both record what the default limit does; before, the walk
# ran out of descriptors and recorded directories as unreadable.
python3 - <<'PY'
import os, random
random.seed(7)
dirs = ["fd"]
os.makedirs("fd")
for i in range(300):
    d = "%s/d%d" % (random.choice(dirs), i)
    os.mkdir(d)
    dirs.append(d)
    with open(d + "/notes.txt", "w") as f:
        f.write("directory %d\n" % i)
PY
qemu-img create -q -f qcow2 fd/base.qcow2 16M
qemu-img create -q -f qcow2 -b ../base.qcow2 -F qcow2 fd/d0/top.qcow2
find fd -type f -exec touch -m -d "@$(($(date +%s) - 3600))" {} +
fdrows() { listing && q "SELECT kind || ' ' || count(*) FROM v_entries GROUP BY kind"; } # listing: the cold store's
DB=$WORK/fd.db
"$IMGAUDIT" scan --db "$DB" --quiet fd
eq "few descriptors: default limit" "$?" "0"
fdrows >fd.rows
eq "few descriptors: what was recorded" "$(grep -c ' not-an-image$' fd.rows) $(grep -c ' ok$' fd.rows)" "300 2"
for lim in -n -Sn; do
	DB=$WORK/fd$lim.db
	(ulimit $lim 24 && "$IMGAUDIT" scan --db "$DB" --quiet fd)
	eq "few descriptors (ulimit $lim 24): exit status" "$?" "0"
	eq "few descriptors (ulimit $lim 24): rows" "$(fdrows | diff fd.rows - && echo same)" "same"
done

# ---- schema 6 from schema 4, with history ----
DB=$WORK/old.db
for f in "$SOURCE_DIR"/schema/00[1-4]_*.sql; do cat "$f"; done | sqlite3 "$DB"
sqlite3 "$DB" "PRAGMA user_version = 4; PRAGMA application_id = 1229014100;
INSERT INTO scans (id, started_at, finished_at, status, exit_status, pid, host, tool_version)
	VALUES (1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', 'complete', 0, 1, 'h', 'old');
INSERT INTO scan_roots (scan_id, role, path) VALUES (1, 'scan', 'old');
INSERT INTO files (id, path, size) VALUES (1, 'old/notes.txt', 10), (2, 'old/skip.tar', 10240);
INSERT INTO scan_files (scan_id, file_id, kind) VALUES (1, 1, 'not-an-image'), (1, 2, 'archive-skipped');
INSERT INTO entries (scan_id, path, kind, reason, detail, file_id) VALUES
	(1, 'old/notes.txt', 'not-an-image', 'no driver recognises it', NULL, 1),
	(1, 'old/skip.tar', 'not-an-image', 'an archive, not opened (--no-archives)', NULL, 2),
	(1, 'old/l', 'symlink', 'not followed', 'x', NULL);" || bad "making a schema-4 store"
before=$(q "SELECT path, kind, reason FROM v_entries ORDER BY path")
mkdir -p new && echo hi >new/t.txt
"$IMGAUDIT" scan --db "$DB" --quiet new
eq "migrated: exit status" "$?" "0"
eq "migrated: version" "$(q "PRAGMA user_version")" "$(schema_latest)"
eq "migrated: old scan's entries rows" "$(q "SELECT path FROM entries WHERE scan_id = 1 ORDER BY path")" "old/l"
eq "migrated: old scan as before" "$(q "SELECT path, kind, reason FROM entries WHERE scan_id = 1 UNION ALL
	SELECT path, kind, reason FROM v_not_images WHERE scan_id = 1 ORDER BY path")" "$before"
eq "migrated: new scan" "$(q "SELECT path || ' ' || kind FROM v_entries")" "new/t.txt not-an-image"

lib_summary test_scan_walk
