#!/bin/bash
# `imgaudit scan` end to end on a store built here with qemu-img: nested
# directories, chains across directories, several formats, a raw backing file,
# a qcow2 external data file, a missing backing file, backing loops (A->B->A
# and an image naming itself), references leaving the roots (absolute path,
# ../, json:, a symlink), a FIFO named as a backing file, a FIFO, a symlink
# loop, a non-image file, names with a newline and invalid UTF-8.  Asserts
# with SQL on the views, and that v_map equals `imgaudit map --output=json`
# for every image.
. "$(dirname "$0")/lib.sh"
lib_workdir scan
lib_on_exit() { mountpoint -q "$WORK/ofs/mnt" 2>/dev/null && umount "$WORK/ofs/mnt"; }
# q SQL EXPECTED: the query's output (sqlite3 list mode) must equal EXPECTED
q() { sql_eq db.sqlite "$1" "$2"; }
qi() { qemu-img "$@" >/dev/null || { echo "setup failed: qemu-img $*"; exit 1; }; }
io() { qemu-io -c "$2" "$1" >/dev/null || { echo "setup failed: qemu-io $*"; exit 1; }; }

mkdir -p s/base s/vms/web s/vms/db/deep/er s/fmt s/broken s/misc outside
cd s
# a base and overlays in other directories, two levels
qi create -f qcow2 base/debian.qcow2 8M
io base/debian.qcow2 'write -P 1 0 256k'
io base/debian.qcow2 'write -z 1M 128k'
io base/debian.qcow2 'write -P 7 3M 64k'
qi create -f qcow2 -b ../../base/debian.qcow2 -F qcow2 vms/web/web1.qcow2
io vms/web/web1.qcow2 'write -P 2 128k 64k'
qi create -f qcow2 -b web1.qcow2 -F qcow2 vms/web/web1-snap.qcow2
io vms/web/web1-snap.qcow2 'write -P 3 2M 64k'
qi create -f qcow2 -b ../../../../base/debian.qcow2 -F qcow2 vms/db/deep/er/db.qcow2
io vms/db/deep/er/db.qcow2 'write -z 0 64k'
# a backing file without a recorded format (probed), a shorter backing file
qi create -f qcow2 base/small.qcow2 1M
io base/small.qcow2 'write -P 9 0 512k'
qi create -f qcow2 vms/longer.qcow2 4M
qemu-img rebase -u -b ../base/small.qcow2 vms/longer.qcow2 2>/dev/null
# a raw base (an image only because something uses it as a backing file)
head -c 1048576 /dev/urandom > base/plain.raw
truncate -s 4M base/plain.raw
qi create -f qcow2 -b ../base/plain.raw -F raw vms/on-raw.qcow2
io vms/on-raw.qcow2 'write -P 5 2M 64k'
# other formats
for f in vdi vpc vhdx qed qcow parallels; do
	qi create -f "$f" "fmt/disk.$f" 4M
	io "fmt/disk.$f" 'write -P 4 0 64k' 2>/dev/null || true
done
(cd fmt && qi create -f qcow2 -o data_file=disk.data,data_file_raw=on external.qcow2 2M)
(cd fmt && io external.qcow2 'write -P 6 0 64k')
qi create -f qcow2 fmt/plain.qcow2 2M
io fmt/plain.qcow2 'write -P 3 0 128k'
qemu-img convert -c -O qcow2 fmt/plain.qcow2 fmt/compressed.qcow2 >/dev/null
rm fmt/plain.qcow2
# broken chains
qi create -f qcow2 -b ghost.qcow2 -F qcow2 -u broken/missing.qcow2 4M
qi create -f qcow2 broken/loop-a.qcow2 4M
qi create -f qcow2 -b loop-a.qcow2 -F qcow2 broken/loop-b.qcow2
qemu-img rebase -u -b loop-b.qcow2 -F qcow2 broken/loop-a.qcow2
qi create -f qcow2 broken/self.qcow2 4M
python3 - broken/self.qcow2 <<'PY'
import struct, sys
# Patch the header to name the image itself as its backing file.
name = b"self.qcow2"
with open(sys.argv[1], "r+b") as f:
    hdr = bytearray(f.read(512))
    off = 4000
    f.seek(off); f.write(name)
    f.seek(8); f.write(struct.pack(">QI", off, len(name)))
PY
qi create -f qcow2 "$WORK/outside/secret.qcow2" 1M
qi create -f qcow2 -b "$WORK/outside/secret.qcow2" -F qcow2 -u broken/absolute.qcow2 1M
qi create -f qcow2 -b ../../outside/secret.qcow2 -F qcow2 -u broken/dotdot.qcow2 1M
qi create -f qcow2 -b 'json:{"file.filename":"/etc/passwd"}' -F raw -u broken/json.qcow2 1M
ln -s ../../outside/secret.qcow2 broken/link-out.qcow2
qi create -f qcow2 -b link-out.qcow2 -F qcow2 -u broken/via-link.qcow2 1M
mkfifo broken/pipe.qcow2
qi create -f qcow2 -b pipe.qcow2 -F qcow2 -u broken/fifo-backing.qcow2 1M
# misc entries
mkfifo misc/fifo
ln -s loop1 misc/loop2
ln -s loop2 misc/loop1
echo "not an image" > misc/readme.txt
qi create -f qcow2 misc/$'new\nline.qcow2' 1M
qi create -f qcow2 misc/$'bad\xffname.qcow2' 1M
io misc/$'bad\xffname.qcow2' 'write -P 8 0 4k'
ln misc/readme.txt misc/hardlink.txt
cd ..

"$IMGAUDIT" scan --db db.sqlite --quiet s
rc=$?
[ $rc = 0 ] && ok || bad "scan exit status $rc (expected 0)"

q "SELECT status, files_seen > 25, files_reused FROM scans" "complete|1|0"
q "SELECT count(*) FROM v_images" "27"
q "SELECT format, status, chain_depth, backing_path FROM v_images WHERE path = '$WORK/s/vms/web/web1-snap.qcow2'" \
	"qcow2|ok|2|s/vms/web/web1.qcow2"
q "SELECT backing_path FROM v_images WHERE path = '$WORK/s/vms/db/deep/er/db.qcow2'" "s/base/debian.qcow2"
q "SELECT format, status, chain_depth FROM v_images WHERE path = '$WORK/s/base/plain.raw'" "raw|ok|0"
q "SELECT format FROM v_images WHERE path LIKE '$WORK/s/fmt/disk.%' ORDER BY 1" \
	"$(printf 'parallels\nqcow\nqed\nvdi\nvhdx\nvpc')"
q "SELECT status FROM v_images WHERE path = '$WORK/s/broken/missing.qcow2'" "missing"
q "SELECT status FROM v_images WHERE path IN ('$WORK/s/broken/loop-a.qcow2', '$WORK/s/broken/loop-b.qcow2', '$WORK/s/broken/self.qcow2')" \
	"$(printf 'loop\nloop\nloop')"
q "SELECT status FROM v_images WHERE path = '$WORK/s/broken/absolute.qcow2'" "outside-roots"
q "SELECT status FROM v_images WHERE path = '$WORK/s/broken/dotdot.qcow2'" "outside-roots"
q "SELECT status FROM v_images WHERE path = '$WORK/s/broken/json.qcow2'" "protocol"
q "SELECT status FROM v_images WHERE path = '$WORK/s/broken/via-link.qcow2'" "outside-roots"
q "SELECT status FROM v_images WHERE path = '$WORK/s/broken/fifo-backing.qcow2'" "not-regular"
q "SELECT status, target_path FROM v_links WHERE path = '$WORK/s/broken/missing.qcow2'" "missing|s/broken/ghost.qcow2"
q "SELECT count(*) FROM v_images WHERE path LIKE '%secret%'" "0"
q "SELECT kind, detail FROM v_entries WHERE path = '$WORK/s/misc/loop1'" "symlink|loop2"
q "SELECT kind FROM v_entries WHERE path IN ('$WORK/s/misc/fifo', '$WORK/s/broken/pipe.qcow2') ORDER BY 1" \
	"$(printf 'fifo\nfifo')"
q "SELECT kind, detail FROM v_entries WHERE path = '$WORK/s/misc/readme.txt'" "hardlink|s/misc/hardlink.txt"
q "SELECT kind FROM v_entries WHERE path = '$WORK/s/misc/hardlink.txt'" "not-an-image"
q "SELECT count(*) FROM v_entries WHERE path = '$WORK/s/fmt/disk.data'" "0"
q "SELECT sf.kind FROM scan_files sf JOIN files f ON f.id = sf.file_id WHERE f.path = '$WORK/s/fmt/disk.data'" "data-file"
q "SELECT count(*) FROM v_map WHERE path = '$WORK/s/fmt/external.qcow2' AND file = '$WORK/s/fmt/disk.data'" "1"
q "SELECT count(*) FROM v_map WHERE path = '$WORK/s/fmt/compressed.qcow2' AND compressed = 1" "1"
q "SELECT max(depth) FROM v_map WHERE path = '$WORK/s/vms/web/web1-snap.qcow2'" "2"
q "SELECT file FROM v_map WHERE path = '$WORK/s/vms/web/web1-snap.qcow2' AND depth = 2 AND data = 1 LIMIT 1" \
	"s/base/debian.qcow2"
# names round-trip byte for byte (newline, invalid UTF-8)
python3 - db.sqlite "$WORK/" <<'PY' && ok || bad "byte-exact names"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1]); con.text_factory = bytes
w = sys.argv[2].encode()
paths = {r[0] for r in con.execute("SELECT path FROM v_images")}
assert w + b"s/misc/new\nline.qcow2" in paths, paths
assert w + b"s/misc/bad\xffname.qcow2" in paths, paths
row = con.execute("SELECT typeof(path) FROM v_images WHERE path = ?", (w + b"s/misc/bad\xffname.qcow2",)).fetchone()
assert row == (b"blob",), row
PY
# the map of every image equals imgaudit map's
python3 "$SOURCE_DIR/tests/scripts/scan_vmap_check.py" db.sqlite "$IMGAUDIT" --min 18 && ok || bad "v_map vs imgaudit map"
# nothing outside the database, its lock and the WAL files was written
[ -z "$(find s outside -newer db.sqlite.lock -not -type d 2>/dev/null)" ] && ok || bad "files in the store changed"

# usage errors
"$IMGAUDIT" scan --db db.sqlite 2>/dev/null; [ $? = 2 ] && ok || bad "no ROOT must be a usage error"
"$IMGAUDIT" scan --db db.sqlite --bogus s 2>/dev/null; [ $? = 2 ] && ok || bad "unknown option must be exit 2"
"$IMGAUDIT" scan --db db.sqlite -j 0 s 2>/dev/null; [ $? = 2 ] && ok || bad "-j 0 must be exit 2"
# a database SQLite would make vanish on exit is a usage error, and nothing is created
"$IMGAUDIT" scan --db "" s 2>/dev/null; [ $? = 2 ] && ok || bad "--db '' must be exit 2"
"$IMGAUDIT" scan --db :memory: s 2>/dev/null; [ $? = 2 ] && ok || bad "--db :memory: must be exit 2"
[ ! -e .lock ] && [ ! -e :memory:.lock ] && ok || bad "a lock file was created for a refused --db"

# --exclude and --no-archives
"$IMGAUDIT" scan --db ex.sqlite --quiet --exclude '*.qcow2' --exclude 'fmt' s
q2() { local got; got=$(sqlite3 ex.sqlite "$1" | rel); [ "$got" == "$2" ] && ok || { bad "$1"; echo "    expected: $2"; echo "    got: $got"; }; }
q2 "SELECT count(*) FROM v_images WHERE format = 'qcow2'" "0"
q2 "SELECT count(*) FROM v_images WHERE path LIKE '$WORK/s/fmt/%'" "0"

# progress goes to stderr only on a terminal or with --progress; stdout stays
# empty; without a terminal only the one-line summary is printed
"$IMGAUDIT" scan --db pr.sqlite s >out.txt 2>err.txt
[ ! -s out.txt ] && [ "$(wc -l <err.txt)" = 1 ] && grep -qE '^imgaudit scan: scan [0-9]+ complete: 27 images, ' err.txt && ok || bad "output without a terminal: $(cat out.txt err.txt | head -3)"
"$IMGAUDIT" scan --db pr.sqlite --progress s >out.txt 2>err.txt
[ ! -s out.txt ] && grep -q "imgaudit scan: [0-9]*/[0-9]* files" err.txt && ok || bad "--progress: $(head -c 200 err.txt)"
"$IMGAUDIT" scan --db pr.sqlite --quiet s >out.txt 2>err.txt
[ ! -s out.txt ] && [ ! -s err.txt ] && ok || bad "--quiet must silence the scan"
if command -v script >/dev/null; then
	script -qec "'$IMGAUDIT' scan --db pr.sqlite s" /dev/null >tty.txt 2>&1
	grep -q "imgaudit scan: [0-9]*/[0-9]* files" tty.txt && ok || bad "no progress on a terminal"
fi

# --one-file-system: a mount inside the tree is recorded, not entered (needs mount rights)
mkdir -p ofs/mnt
qemu-img create -q -f qcow2 ofs/top.qcow2 1M
if mount -t tmpfs -o size=4m tmpfs ofs/mnt 2>/dev/null; then
	qemu-img create -q -f qcow2 ofs/mnt/inner.qcow2 1M
	"$IMGAUDIT" scan --db ofs.sqlite --quiet --one-file-system ofs
	q3() { local got; got=$(sqlite3 ofs.sqlite "$1" | rel); [ "$got" == "$2" ] && ok || { bad "$1"; echo "    expected: $2"; echo "    got: $got"; }; }
	q3 "SELECT path FROM v_images" "ofs/top.qcow2"
	q3 "SELECT kind FROM v_entries WHERE path = '$WORK/ofs/mnt'" "other-filesystem"
	"$IMGAUDIT" scan --db ofs2.sqlite --quiet ofs
	[ "$(sqlite3 ofs2.sqlite "SELECT count(*) FROM v_images")" = 2 ] && ok || bad "without --one-file-system the mount is entered"
	umount ofs/mnt
else
	echo "skip: cannot mount a tmpfs for --one-file-system"
fi

# chains mapped live (a layer whose runs exceed the per-layer cap, here made
# tiny): each image's rows are stored as a 'rows' layer, and v_map is the same
IMGAUDIT_TEST_LAYER_CAP=64 "$IMGAUDIT" scan --db live.sqlite --quiet s
q_live() { sqlite3 live.sqlite "$1"; }
[ "$(q_live "SELECT count(*) FROM layers WHERE kind = 'rows'")" -gt 0 ] && ok || bad "no chain was mapped live under a tiny cap"
[ "$(q_live "SELECT * FROM v_map ORDER BY path, start")" = "$(sqlite3 db.sqlite "SELECT * FROM v_map ORDER BY path, start")" ] &&
	ok || bad "v_map of live-mapped chains differs from the composed one"
[ "$(q_live "SELECT path, own_data_bytes, backing_data_bytes, zero_bytes, unallocated_bytes, unknown_bytes FROM v_space ORDER BY path")" = \
	"$(sqlite3 db.sqlite "SELECT path, own_data_bytes, backing_data_bytes, zero_bytes, unallocated_bytes, unknown_bytes FROM v_space ORDER BY path")" ] &&
	ok || bad "space figures of live-mapped chains differ"

# an image that cannot be mapped is recorded with its reason and the exit status is 1
mkdir -p damaged
qemu-img create -q -f qcow2 damaged/cut.qcow2 64M
qemu-io -c 'write -P 1 0 64k' damaged/cut.qcow2 >/dev/null
python3 - damaged/cut.qcow2 <<'PY'
import struct, sys
# Point the L1 table far beyond the end of the file.
with open(sys.argv[1], "r+b") as f:
    f.seek(40); f.write(struct.pack(">Q", 1 << 40))
PY
"$IMGAUDIT" scan --db dmg.sqlite --quiet damaged 2>/dev/null
rc=$?
[ $rc = 1 ] && ok || bad "a damaged image must give exit status 1, got $rc"
got=$(sqlite3 dmg.sqlite "SELECT status IN ('corrupt', 'truncated'), error IS NOT NULL FROM v_images")
[ "$got" = "1|1" ] && ok || bad "damaged image status: $got"
[ "$(sqlite3 dmg.sqlite "SELECT exit_status, problems FROM scans")" = "1|1" ] && ok || bad "scan row of a scan with problems"

# A fixed VHD (which no probe recognises: qemu does not either) reached as
# the parent of a differencing VHD is an image of format vpc, not a
# not-an-image entry; and a parent whose unique id is not the one the child
# records gives the link the status parent-mismatch (the chain still mapped).
mkdir -p vhd
qi create -f vpc -o subformat=fixed,force_size=on vhd/base.vhd 4M
io vhd/base.vhd 'write -P 5 0 1M'
qi create -f vpc -o force_size=on vhd/child.vhd 4M
python3 - vhd/base.vhd vhd/child.vhd <<'PY'
import struct, sys
# Make the dynamic child differencing: footer type 4, the parent's unique id
# and name (UTF-16BE) in the dynamic header; no block allocated.
P = open(sys.argv[1], 'rb').read()
d = bytearray(open(sys.argv[2], 'rb').read())
def fix(b, at):
    b[at:at + 4] = b'\0\0\0\0'
    b[at:at + 4] = struct.pack('>I', (~sum(b)) & 0xffffffff)
f = d[:512]
f[60:64] = struct.pack('>I', 4)
fix(f, 64)
d[:512] = f
d[-512:] = f
dh = d[512:1536]
dh[40:56] = P[-512:][68:84]
name = 'base.vhd'.encode('utf-16-be')
dh[64:64 + len(name)] = name
fix(dh, 36)
d[512:1536] = dh
open(sys.argv[2], 'wb').write(d)
PY
qv() { # like q, on vhd.sqlite
	local got
	got=$(sqlite3 vhd.sqlite "$1" 2>&1 | rel)
	if [ "$got" == "$2" ]; then ok; else bad "$1"; echo "    expected: $2"; echo "    got:      $got"; fi
}
"$IMGAUDIT" scan --db vhd.sqlite --quiet vhd
qv "SELECT path, format, status FROM v_images ORDER BY path" "vhd/base.vhd|vpc|ok
vhd/child.vhd|vpc|ok"
qv "SELECT count(*) FROM v_entries WHERE path = '$WORK/vhd/base.vhd'" "0"
qv "SELECT backing, target_path, status FROM v_links" "base.vhd|vhd/base.vhd|ok"
qv "SELECT min(depth), max(depth), count(DISTINCT file) FROM v_map WHERE path = '$WORK/vhd/child.vhd'" "1|1|1"
"$IMGAUDIT" report --db vhd.sqlite --section=chains >chains.txt 2>&1
grep -q 'outside the scan' chains.txt && bad "a fixed VHD parent is reported outside the scan" || ok
python3 - vhd/base.vhd <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
f = d[-512:]
f[68:84] = bytes(range(16))
f[64:68] = b'\0\0\0\0'
f[64:68] = struct.pack('>I', (~sum(f)) & 0xffffffff)
d[-512:] = f
open(sys.argv[1], 'wb').write(d)
PY
"$IMGAUDIT" scan --db vhd.sqlite --quiet vhd
qv "SELECT status, error LIKE '%records uuid%the parent has uuid 00010203-0405-0607-0809-0a0b0c0d0e0f%' FROM links WHERE scan_id = (SELECT id FROM v_latest_scan)" "parent-mismatch|1"
qv "SELECT path, status FROM v_images ORDER BY path" "vhd/base.vhd|ok
vhd/child.vhd|ok"
qv "SELECT code FROM v_findings WHERE path = '$WORK/vhd/child.vhd'" "parent-mismatch"

# the default number of images mapped at once (-j) is the CPUs the process may run on (taskset,
# cpusets), not every CPU online: one thread is the writer, the rest workers (-j of them
# on a warm cache; as many again once a run of files is not in memory)
# (LeakSanitizer cannot run under ptrace: the sanitizer build checks leaks elsewhere)
threads() {
	rm -f thr.sqlite*
	ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" strace -f -qq -e trace=clone,clone3 -o threads.txt "$@" --db thr.sqlite --quiet damaged 2>/dev/null
	local rc=$? # 1: the damaged image
	[ $rc = 1 ] || echo "exit $rc"
	grep -c clone threads.txt
}
if command -v strace >/dev/null && command -v taskset >/dev/null && [ "$(nproc --all)" -gt 1 ]; then
	[ "$(threads taskset -c 0 "$IMGAUDIT" scan)" = "$(threads "$IMGAUDIT" scan -j 1)" ] && ok || bad "taskset -c 0: not one worker"
	[ "$(threads "$IMGAUDIT" scan -j 2)" -gt "$(threads "$IMGAUDIT" scan -j 1)" ] && ok || bad "thread count check is blind"
fi

lib_summary test_scan_store
