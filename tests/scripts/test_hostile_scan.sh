#!/bin/bash
# Hostile input for `imgaudit scan`: references that try to leave the scan
# roots (absolute, ../, symlinks, json:, URLs, qcow2 data files, VMDK extents
# and parent hints, VHD parent locators), loops, a chain deeper than the cap,
# FIFOs, sockets and devices as backing files and inside the walked tree,
# header fields of every format pushed to their edges, truncated files,
# hostile archives (traversal names, link/FIFO/device members, duplicates,
# compression bombs, a 100 GiB sparse member, a truncated stream, an encrypted
# zip member, nesting, an OVA naming files it does not hold), and the
# database surviving damage, a full disk and concurrent readers.
#
# Each case scans its own root (c/NAME) into its own database under
# `strace -f -y`, and asserts the exit status, what the database recorded,
# and (hostile_lib.py judge-scan) that nothing outside the root, the
# database's directory and the spool directory was opened for I/O, that no
# FIFO, socket or device was opened for I/O (O_PATH opens are fine), that no
# socket was created, no program executed, and nothing written, created,
# removed, renamed or locked outside the database and spool directories.
# Cases already covered by test_scan_store.sh, test_scan_archives.sh and
# test_scan_crash.sh (plain absolute/../json:/symlink-file references, A->B->A
# and self loops, a FIFO backing file, a garbage or foreign database, disk
# full after a complete scan, SIGKILL) are not repeated here.
. "$(dirname "$0")/lib.sh"
here=$HERE
lib="python3 $here/hostile_lib.py"
TRACED=$(python3 "$here/hostile_lib.py" traced)
need strace
lib_workdir hostile-scan
work=$WORK
BG=
lib_on_exit() {
	[ -n "$BG" ] && kill -9 "$BG" 2>/dev/null
	mountpoint -q "$work/full" 2>/dev/null && umount "$work/full"
}
outside=$work/outside
mkdir -p "$outside" "$work/c" "$work/db" "$work/tmp"
export TMPDIR=$work/tmp # where archive spools spill: allowed to be written
t0=$(date +%s)

qi() { qemu-img "$@" >/dev/null || { echo "setup failed: qemu-img $*"; exit 1; }; }
w() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null || { echo "setup failed: qemu-io $f $*"; exit 1; }; }
rebase() { qemu-img rebase -q -u -b "$2" -F "${3:-qcow2}" "$1"; }
base() { qi create -f qcow2 "$1" "${2:-1M}"; }

qi create -f qcow2 "$outside/secret.qcow2" 1M
w "$outside/secret.qcow2" -c 'write -P 0x5e 0 64k'
head -c 65536 /dev/urandom >"$outside/secret.raw"
cp "$outside/secret.qcow2" "$outside/secret.vmdk"
qi create -f vpc "$outside/secret.vhd" 2M
FORBIDDEN=("$outside/secret.qcow2" "$outside/secret.raw" "$outside/secret.vmdk" "$outside/secret.vhd" "$outside/secret.vhdx"
	/dev/zero /dev/null /etc/passwd /etc/hostname)

# begin NAME: a new case; its root is $work/c/NAME, the setup runs there.
begin() {
	# TIMING=1: the duration of each case on stderr
	[ -n "${TIMING:-}" ] && echo "${name:-setup} ${tcase:-} $EPOCHREALTIME" >&2
	tcase=$EPOCHREALTIME
	name=$1
	problems=""
	db=$work/db/$name.db
	mkdir -p "$work/c/$name"
	cd "$work/c/$name" || exit 1
}
# scan WANT_RC [OPTION...]: scan the case's root (as NAME, from $work/c, so
# display paths are $work/c/NAME/..., expect shows them as NAME/...) under strace; --allow-root options widen the
# roots the judge accepts too.
scan() {
	local want=$1 a roots=("$work/c/$name") log=$work/db/$name.strace
	shift
	for a in "$@"; do
		case $a in --allow-root=*) roots+=("${a#--allow-root=}") ;; esac
	done
	cd "$work/c" || exit 1
	# LeakSanitizer cannot run under ptrace: the sanitizer build checks leaks elsewhere.
	ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" timeout 30 strace -f -qq -y -o "$log" \
		-e trace="$TRACED" "$IMGAUDIT" scan --db "$db" --quiet -j 2 "$@" "$name" 2>"$work/db/$name.err"
	rc=$?
	# hangs: every case finishes in well under a second (a few under the sanitizers)
	[ "$rc" = 124 ] && problems+=" timed out after 30 s;"
	[ "$rc" = "$want" ] || problems+=" exit $rc, wanted $want;"
	local j args=()
	for a in "${roots[@]}"; do args+=(--root "$a"); done
	for a in "${FORBIDDEN[@]}"; do args+=(--forbid "$a"); done
	if ! j=$($lib judge-scan "$log" "$IMGAUDIT" "${args[@]}" --allow "$work/db" --allow "$(dirname "$db")" --allow "$work/tmp"); then
		problems+=" $j;"
	fi
	cd "$work/c/$name" || exit 1
}
# expect SQL WANT: the query's output (sqlite3 list mode) on the case's database
expect() {
	local got
	got=$(command sqlite3 "$db" "$1" 2>&1 | sed "s|$work/c/||g") # display paths NAME/... (stored absolute)
	[ "$got" == "$2" ] || problems+="
    $1
      wanted: $(printf '%s' "$2" | tr '\n' ' ')
      got:    $(printf '%s' "$got" | tr '\n' ' ')"
}
# check DESCRIPTION COMMAND...: a shell condition
check() {
	local what=$1
	shift
	"$@" || problems+=" $what;"
}
end() {
	if [ -z "$problems" ]; then
		ok
	else
		FAIL=$((FAIL + 1))
		echo "FAIL $name:$problems"
		[ -s "$work/db/$name.err" ] && echo "    stderr: $(head -c 400 "$work/db/$name.err")"
	fi
	cd "$work" || exit 1
}
# link NAME: status of the image's own backing reference, as "status|kind"
linkq() { echo "SELECT status, kind FROM v_links WHERE path = '$work/c/$name/$1' AND kind = '${2:-backing}'"; }
imgq() { echo "SELECT status FROM v_images WHERE path = '$work/c/$name/$1'"; }

# The judge itself: a program that reads a file outside the root, opens a
# FIFO, creates a socket, writes or renames a file in the root or takes a
# lock there must be caught (so a silent judge cannot pass).
begin judge-canary
mkfifo fifo
python3 -c 'import socket; socket.socket()' 2>/dev/null
echo x >victim
timeout 10 strace -f -qq -y -o "$work/db/canary.strace" -e trace="$TRACED" python3 -c '
import fcntl, os, socket, sys
open(sys.argv[1], "rb").read(1)
os.close(os.open("fifo", os.O_RDONLY | os.O_NONBLOCK))
socket.socket()
open("new", "wb").close()
os.rename("victim", "renamed")
fcntl.flock(os.open("new", os.O_RDONLY), fcntl.LOCK_SH)' "$outside/secret.raw"
j=$($lib judge-scan "$work/db/canary.strace" "$(command -v python3)" --root "$work/c/$name")
for what in "outside the roots" "FIFO" "socket" "for writing" "changed the file system" "lock"; do
	grep -q "$what" <<<"$j" || problems+=" the judge missed: $what;"
done
end

# ---------------------------------------------------------------- references

begin dotdot-deep
mkdir -p a/b/c
base a/b/c/t.qcow2
rebase a/b/c/t.qcow2 ../../../../../outside/secret.qcow2
base a/ok.qcow2
base a/b/c/in.qcow2
rebase a/b/c/in.qcow2 ../../ok.qcow2 # ../ that stays inside the root is fine
scan 0
expect "$(imgq a/b/c/t.qcow2)" "outside-roots"
expect "SELECT status, chain_depth, backing_path FROM v_images WHERE path = '$work/c/$name/a/b/c/in.qcow2'" \
	"ok|1|$name/a/ok.qcow2"
end

begin abs-inside
base ok.qcow2
base t.qcow2
rebase t.qcow2 "$work/c/abs-inside/ok.qcow2" # absolute, but beneath the root
base out.qcow2
rebase out.qcow2 "$work/c/abs-inside/../../outside/secret.qcow2" # absolute, leaves by ../
scan 0
expect "SELECT status, chain_depth FROM v_images WHERE path = '$work/c/$name/t.qcow2'" "ok|1"
expect "$(imgq out.qcow2)" "outside-roots"
end

begin symlink-dir
ln -s "$outside" linkdir
base t.qcow2
rebase t.qcow2 linkdir/secret.qcow2
mkdir real
base real/b.qcow2
ln -s real alias # a directory symlink that stays inside the root
base u.qcow2
rebase u.qcow2 alias/b.qcow2
scan 0
expect "$(imgq t.qcow2)" "outside-roots"
expect "SELECT kind, detail FROM v_entries WHERE path = '$work/c/$name/linkdir'" "symlink|$outside"
expect "SELECT count(*) FROM v_images WHERE path LIKE '%secret%'" "0"
expect "SELECT status, chain_depth FROM v_images WHERE path = '$work/c/$name/u.qcow2'" "ok|1"
end

begin symlink-chain-out
# a symlink inside the root to a symlink inside the root that leaves it
ln -s "$outside/secret.qcow2" hop2
ln -s hop2 hop1
base t.qcow2
rebase t.qcow2 hop1
scan 0
expect "$(linkq t.qcow2)" "outside-roots|backing"
end

begin protocols
for p in 'http://127.0.0.1/disk.img' 'nbd://127.0.0.1:10809/x' 'nbd:unix:/tmp/sock' 'file:/etc/passwd' \
	'ssh://root@127.0.0.1/etc/passwd' 'json:{"driver":"qcow2","file":{"driver":"http","url":"http://127.0.0.1/x"}}'; do
	i=$((${i:-0} + 1))
	base "p$i.qcow2"
	rebase "p$i.qcow2" "$p" raw
done
scan 0
expect "SELECT count(*), min(status), max(status), count(target_path) FROM v_links WHERE path LIKE '$work/c/$name/p%'" \
	"6|protocol|protocol|0"
expect "SELECT count(*) FROM v_images WHERE status = 'protocol'" "6"
end

begin data-file
qi create -f qcow2 -o data_file=d.raw,data_file_raw=on abs.qcow2 1M
$lib qcow2-ext abs.qcow2 0x44415441 "$outside/secret.raw"
qi create -f qcow2 -o data_file=d2.raw dotdot.qcow2 1M
$lib qcow2-ext dotdot.qcow2 0x44415441 "../../outside/secret.raw"
qi create -f qcow2 -o data_file=d3.raw proto.qcow2 1M
$lib qcow2-ext proto.qcow2 0x44415441 "nbd:127.0.0.1:10809"
mkfifo pipe.raw
qi create -f qcow2 -o data_file=d4.raw fifo.qcow2 1M
$lib qcow2-ext fifo.qcow2 0x44415441 "pipe.raw"
ln -s "$outside/secret.raw" out-link.raw
qi create -f qcow2 -o data_file=d5.raw link.qcow2 1M
$lib qcow2-ext link.qcow2 0x44415441 "out-link.raw"
rm -f d.raw d2.raw d3.raw d4.raw d5.raw
scan 1
expect "$(linkq abs.qcow2 data-file)" "outside-roots|data-file"
expect "$(linkq dotdot.qcow2 data-file)" "outside-roots|data-file"
expect "$(linkq proto.qcow2 data-file)" "protocol|data-file"
expect "$(linkq fifo.qcow2 data-file)" "not-regular|data-file"
expect "$(linkq link.qcow2 data-file)" "outside-roots|data-file"
# guest data that cannot be reached: the image could not be scanned
expect "SELECT count(*) FROM v_images WHERE status = 'ok'" "0"
expect "SELECT kind FROM v_entries WHERE path = '$work/c/$name/pipe.raw'" "fifo"
end

vmdk_desc() { # vmdk_desc FILE PARENT-CID PARENT-HINT EXTENT-LINE...
	local f=$1 pcid=$2 hint=$3
	shift 3
	{
		printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=%s\ncreateType="monolithicFlat"\n' "$pcid"
		[ -n "$hint" ] && printf 'parentFileNameHint="%s"\n' "$hint"
		printf '\n# Extent description\n'
		printf '%s\n' "$@"
		printf '\nddb.virtualHWVersion = "4"\nddb.geometry.cylinders = "1"\nddb.geometry.heads = "16"\nddb.geometry.sectors = "63"\nddb.adapterType = "ide"\n'
	} >"$f"
}

begin vmdk-refs
head -c 65536 /dev/zero >flat.raw
vmdk_desc ext-abs.vmdk ffffffff "" "RW 128 FLAT \"$outside/secret.raw\" 0"
vmdk_desc ext-dotdot.vmdk ffffffff "" 'RW 128 FLAT "../../outside/secret.raw" 0'
vmdk_desc ext-dev.vmdk ffffffff "" 'RW 128 FLAT "/dev/zero" 0'
vmdk_desc ext-second.vmdk ffffffff "" 'RW 128 FLAT "flat.raw" 0' 'RW 128 FLAT "../../outside/secret.raw" 0'
vmdk_desc ext-self.vmdk ffffffff "" 'RW 128 SPARSE "ext-self.vmdk"'
vmdk_desc hint-abs.vmdk 12345678 "$outside/secret.vmdk" 'RW 128 FLAT "flat.raw" 0'
vmdk_desc hint-dotdot.vmdk 12345678 "../../outside/secret.vmdk" 'RW 128 FLAT "flat.raw" 0'
vmdk_desc hint-json.vmdk 12345678 'json:{"file.filename":"/etc/passwd"}' 'RW 128 FLAT "flat.raw" 0'
vmdk_desc ok.vmdk ffffffff "" 'RW 128 FLAT "flat.raw" 0'
scan 1
expect "$(linkq ext-abs.vmdk extent)" "outside-roots|extent"
expect "$(linkq ext-dotdot.vmdk extent)" "outside-roots|extent"
expect "$(linkq ext-dev.vmdk extent)" "outside-roots|extent"
expect "SELECT status FROM v_links WHERE path = '$work/c/$name/ext-second.vmdk' ORDER BY status" "$(printf 'ok\noutside-roots')"
expect "SELECT status <> 'ok' FROM v_images WHERE path = '$work/c/$name/ext-self.vmdk'" "1"
expect "$(linkq hint-abs.vmdk)" "outside-roots|backing"
expect "$(linkq hint-dotdot.vmdk)" "outside-roots|backing"
# a quoted value ends at the next quote, as in qemu: the name is 'json:{'
expect "$(linkq hint-json.vmdk)" "protocol|backing"
expect "SELECT status, virtual_size FROM v_images WHERE path = '$work/c/$name/ok.vmdk'" "ok|65536"
end

# A differencing VHD (type 4) written by hand over a dynamic one made by
# qemu-img, with the given parent locators (CODE=NAME, a UTF-16LE W2ku/W2ru or
# a UTF-8 MacX URL); the header's parent name says "parent.vhd".
vhd_diff() {
	qi create -f vpc "$1" 2M
	python3 - "$@" <<'PY'
import struct, sys
path, locs = sys.argv[1], sys.argv[2:]
d = bytearray(open(path, 'rb').read())
foot, body = bytearray(d[-512:]), d[:-512]
dh = bytearray(d[512:1536])
codes = {'W2ku': 0x57326b75, 'W2ru': 0x57327275, 'MacX': 0x4d616358}
for i, l in enumerate(locs):
    code, name = l.split('=', 1)
    data = name.encode('utf-8') if code == 'MacX' else name.encode('utf-16-le')
    off = len(body)
    body += data + b'\0' * (512 - len(data) % 512)
    dh[576 + 24 * i:600 + 24 * i] = struct.pack('>IIIIQ', codes[code], 512, len(data), 0, off)
pn = 'parent.vhd'.encode('utf-16-be')
dh[64:64 + len(pn)] = pn
dh[40:56] = bytes(range(16))
dh[36:40] = b'\0\0\0\0'
dh[36:40] = struct.pack('>I', (~sum(dh)) & 0xffffffff)
foot[60:64] = struct.pack('>I', 4)
foot[64:68] = b'\0\0\0\0'
foot[64:68] = struct.pack('>I', (~sum(foot)) & 0xffffffff)
body[0:512] = foot
body[512:1536] = dh
open(path, 'wb').write(body + foot)
PY
}

begin vhd-locators
vhd_diff rel.vhd 'W2ru=..\..\outside\secret.vhd'
vhd_diff abs.vhd "W2ku=$outside/secret.vhd"
vhd_diff mac.vhd "MacX=file://$outside/secret.vhd"
vhd_diff dev.vhd "W2ku=/dev/zero"
qi create -f vpc parent.vhd 2M
vhd_diff good.vhd 'W2ru=.\parent.vhd'
scan 0
expect "$(linkq rel.vhd)" "outside-roots|backing"
expect "$(linkq abs.vhd)" "outside-roots|backing"
expect "$(linkq mac.vhd)" "outside-roots|backing"
expect "$(linkq dev.vhd)" "outside-roots|backing"
expect "SELECT status, chain_depth, backing_path FROM v_images WHERE path = '$work/c/$name/good.vhd'" \
	"ok|1|$name/parent.vhd"
end

begin vhdx-locators
qi create -f vhdx "$outside/secret.vhdx" 8M
qi create -f vhdx parent.vhdx 8M
for c in "dotdot|..\\..\\outside\\secret.vhdx" "abs|$outside/secret.vhdx" "dev|/dev/zero" \
	"good|.\\parent.vhdx"; do
	qi create -f vhdx "${c%%|*}.vhdx" 8M
	$lib vhdx-diff "${c%%|*}.vhdx" "${c#*|}"
done
scan 0
expect "$(linkq dotdot.vhdx)" "outside-roots|backing"
expect "$(linkq abs.vhdx)" "outside-roots|backing"
expect "$(linkq dev.vhdx)" "outside-roots|backing"
expect "SELECT status, chain_depth, backing_path FROM v_images WHERE path = '$work/c/$name/good.vhdx'" \
	"ok|1|$name/parent.vhdx"
end

begin raw-not-reprobed
# a backing file declared raw is mapped as raw even when it is a qcow2 whose
# own backing file leaves the root: its header is never interpreted there
base evil.qcow2
rebase evil.qcow2 "$outside/secret.qcow2"
base t.qcow2
rebase t.qcow2 evil.qcow2 raw
scan 0
expect "SELECT status, chain_depth FROM v_images WHERE path = '$work/c/$name/t.qcow2'" "ok|1"
expect "SELECT count(*) FROM links l JOIN images i ON i.id = l.image_id JOIN files f ON f.id = i.file_id
	WHERE f.path = '$work/c/$name/t.qcow2' AND l.depth > 0" "0"
expect "$(imgq evil.qcow2)" "outside-roots"
end

begin byte-exact-refused
# a refused name holding a newline and invalid UTF-8 is stored byte for byte
base t.qcow2
rebase t.qcow2 $'../../outside/x\n\xff.qcow2'
scan 0
check "refused name not byte-exact" python3 - "$db" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1]); con.text_factory = bytes
rows = con.execute("SELECT backing, status FROM v_links").fetchall()
sys.exit(0 if rows == [(b"../../outside/x\n\xff.qcow2", b"outside-roots")] else print(rows) or 1)
PY
end

# ------------------------------------------------------ loops, depth, specials

begin loop-three
base a.qcow2; base b.qcow2; base c.qcow2
rebase a.qcow2 b.qcow2; rebase b.qcow2 c.qcow2; rebase c.qcow2 a.qcow2
ln -s a.qcow2 alias.qcow2
base s.qcow2
rebase s.qcow2 s-alias.qcow2 # itself, through a symlink
ln -s s.qcow2 s-alias.qcow2
scan 0
expect "SELECT group_concat(status) FROM v_images WHERE path IN ('$work/c/$name/a.qcow2', '$work/c/$name/b.qcow2', '$work/c/$name/c.qcow2', '$work/c/$name/s.qcow2')" \
	"loop,loop,loop,loop"
end

begin too-deep
# 300 qcow2 layers, each naming the one below (headers patched from one
# template), in an allowed root next to the scan root (so that only the tops
# are walked); a top over 256 layers is fine, over 257 it is too deep.
mkdir -p ../too-deep-layers
qi create -f qcow2 -o cluster_size=4k tmpl.qcow2 64k
python3 - <<'PY'
import struct
t = bytearray(open('tmpl.qcow2', 'rb').read())
t[4:8] = struct.pack('>I', 2)  # version 2: no header extensions to keep
def layer(path, backing):
    d = bytearray(t)
    if backing:
        d[2048:2048 + len(backing)] = backing
        d[8:20] = struct.pack('>QI', 2048, len(backing))
    open(path, 'wb').write(d)
layer('../too-deep-layers/l000.qcow2', None)
for i in range(1, 300):
    layer('../too-deep-layers/l%03d.qcow2' % i, b'l%03d.qcow2' % (i - 1))
layer('top256.qcow2', b'../too-deep-layers/l255.qcow2')
layer('top257.qcow2', b'../too-deep-layers/l256.qcow2')
layer('top300.qcow2', b'../too-deep-layers/l299.qcow2')
PY
rm tmpl.qcow2
scan 0 --allow-root="$work/c/too-deep-layers"
expect "SELECT status, chain_depth FROM v_images WHERE path = '$work/c/$name/top256.qcow2'" "ok|256"
expect "SELECT status FROM v_images WHERE path IN ('$work/c/$name/top257.qcow2', '$work/c/$name/top300.qcow2')" \
	"$(printf 'too-deep\ntoo-deep')"
check "error names the cap" grep -q 256 <<<"$(sqlite3 "$db" "SELECT error FROM v_images WHERE path = '$work/c/$name/top300.qcow2'")"
end

begin special-backing
mkfifo fifo
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' sock
mkdir adir
ln -s fifo fifo-link
i=0
for t in sock adir fifo-link /dev/zero; do
	i=$((${i:-0} + 1))
	base "b$i.qcow2"
	rebase "b$i.qcow2" "$t" raw
done
scan 0
expect "SELECT status FROM v_links WHERE path LIKE '$work/c/$name/b%' ORDER BY path" \
	"$(printf 'not-regular\nnot-regular\nnot-regular\noutside-roots')"
expect "SELECT kind FROM v_entries WHERE path = '$work/c/$name/sock'" "socket"
end

begin device-allowed
# /dev is an allowed root: /dev/zero resolves, but is refused as not regular
# and never opened for I/O
base dev.qcow2
rebase dev.qcow2 /dev/zero raw
vmdk_desc ext.vmdk ffffffff "" 'RW 128 FLAT "/dev/zero" 0'
scan 1 --allow-root=/dev
expect "$(linkq dev.qcow2)" "not-regular|backing"
expect "$(linkq ext.vmdk extent)" "not-regular|extent"
end

begin tree-specials
mknod disk.img c 1 3 # a character device named like an image
mknod blk.img b 7 250
mkfifo pipe.qcow2
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' sock.qcow2
ln -s "$outside/secret.qcow2" out.qcow2
ln -s "$outside" outdir
ln -s nowhere dangling.qcow2
ln -s . dot
ln -s la lb; ln -s lb la
base good.qcow2
scan 0
expect "SELECT path, kind FROM v_entries ORDER BY path" "$(printf '%s\n' \
	"$name/blk.img|device" "$name/dangling.qcow2|symlink" "$name/disk.img|device" \
	"$name/dot|symlink" "$name/la|symlink" "$name/lb|symlink" "$name/out.qcow2|symlink" \
	"$name/outdir|symlink" "$name/pipe.qcow2|fifo" "$name/sock.qcow2|socket")"
expect "SELECT count(*) FROM v_images" "1"
end

# ------------------------------------------------- header fields at their edges

# Every edge image of all formats in one root: each gets a status, the scan goes on.
begin edges
edge() { # edge NAME FORMAT SIZE PATCH-ARGS...
	local n=$1 fmt=$2 size=$3
	shift 3
	qi create -f "$fmt" "e-$n.img" "$size"
	w "e-$n.img" -f "$fmt" -c 'write -P 1 0 4k'
	$lib patch "e-$n.img" "$@"
	EDGES+=("e-$n.img")
}
EDGES=()
edge qcow2-cluster-bits-0 qcow2 1M 20 '>I' 0
edge qcow2-cluster-bits-huge qcow2 1M 20 '>I' 0xffffffff
edge qcow2-l1-size-huge qcow2 1M 36 '>I' 0xffffffff
edge qcow2-l1-past-eof qcow2 1M 40 '>Q' 0x100000000
edge qcow2-l1-misaligned qcow2 1M 40 '>Q' 0x30008
edge qcow2-refcount-past-eof qcow2 1M 48 '>Q' 0x7fff00000000
edge qcow2-refcount-clusters-huge qcow2 1M 56 '>I' 0xffffffff
edge qcow2-size-huge qcow2 1M 24 '>Q' 0x4000000000000000
edge qcow2-backing-size-huge qcow2 1M 8 '>QI' 512 0xffffffff
edge qcow2-unknown-incompat qcow2 1M 72 '>Q' 0x10000000000
edge qcow2-version-4 qcow2 1M 4 '>I' 4
edge qcow2-version-0 qcow2 1M 4 '>I' 0
edge qcow2-snapshots-huge qcow2 1M 60 '>IQ' 0xffffffff 0x10000
edge qcow2-crypt-unknown qcow2 1M 32 '>I' 7
edge qcow2-header-length-huge qcow2 1M 100 '>I' 0xfffffff0
edge qcow2-refcount-order-huge qcow2 1M 96 '>I' 0xff
edge vmdk-grain-zero vmdk 1M 20 '<Q' 0
edge vmdk-gtes-huge vmdk 1M 44 '<I' 0xffffffff
edge vmdk-capacity-huge vmdk 1M 12 '<Q' 0xffffffffffffff
edge vmdk-version-9 vmdk 1M 4 '<I' 9
edge vmdk-gd-past-eof vmdk 1M 56 '<Q' 0xffffffffff
edge vdi-block-size-zero vdi 4M 376 '<I' 0
edge vdi-blocks-huge vdi 4M 384 '<I' 0xffffffff
edge vdi-version-9 vdi 4M 68 '<I' 0x00090000
edge vdi-bmap-past-eof vdi 4M 340 '<I' 0xfffffff0
edge qed-cluster-zero qed 1M 4 '<I' 0
edge qed-table-huge qed 1M 8 '<I' 0xffffffff
edge qed-unknown-feature qed 1M 16 '<Q' 0x100
edge qed-l1-past-eof qed 1M 40 '<Q' 0x7fffffff0000
edge parallels-bat-huge parallels 4M 32 '<I' 0xffffffff
edge parallels-tracks-zero parallels 4M 28 '<I' 0
edge vpc-block-size-zero vpc 4M 544 '>I' 0
edge vpc-bat-past-eof vpc 4M 528 '>Q' 0x7fffffff0000
edge vpc-bat-entries-huge vpc 4M 540 '>I' 0xffffffff
edge qcow-cluster-bits-0 qcow 1M 32 '>B' 0
edge qcow-l2-bits-huge qcow 1M 33 '>B' 0xff
edge qcow-l1-past-eof qcow 1M 40 '>Q' 0x7fffffff0000
edge qcow-size-huge qcow 1M 24 '>Q' 0xffffffffffffff00
edge vhdx-region-count-huge vhdx 4M $((192 * 1024 + 8)) '<I' 0xffffffff
$lib patch e-vhdx-region-count-huge.img $((256 * 1024 + 8)) '<I' 0xffffffff
$lib vhdx-fix-region-checksums e-vhdx-region-count-huge.img
# truncated files of every format
for fmt in qcow2 vmdk vpc vhdx vdi qed qcow parallels; do
	qi create -f "$fmt" "tr-$fmt.img" 4M
	w "tr-$fmt.img" -f "$fmt" -c 'write -P 1 0 64k'
	truncate -s 700 "tr-$fmt.img"
	EDGES+=("tr-$fmt.img")
done
base good.qcow2
scan 1
expect "SELECT status FROM v_images WHERE path = '$work/c/$name/good.qcow2'" "ok"
end
# each edge image: recorded as an image with a non-ok status and an error,
# or (where qemu maps it too: tables or data past the end read as zeros) ok
# with a finding that says so; never missing from the database
for e in "${EDGES[@]}"; do
	name=$e
	problems=""
	got=$(sqlite3 "$db" "SELECT status, error IS NOT NULL,
		(SELECT count(*) FROM v_findings f WHERE f.path = v_images.path) > 0
		FROM v_images WHERE path = '$work/c/edges/$e'")
	ok_re='^((corrupt|truncated|io|limit|unsupported)\|1\|[01]|ok\|0\|1)$'
	if [ "$e" = e-qcow2-version-0.img ]; then
		# not recognised as qcow2 at all (as qemu's probe): a raw disk by its name
		got=$(sqlite3 "$db" "SELECT format, status FROM v_images WHERE path = '$work/c/edges/$e'")
		ok_re='^raw\|ok$'
	fi
	[[ $got =~ $ok_re ]] || problems+=" recorded as '$got';"
	if [ -z "$problems" ]; then ok; else FAIL=$((FAIL + 1)); echo "FAIL edge $e:$problems"; fi
done
db=$work/db/edges.db

# ---------------------------------------------------------------- archives

begin tar-hostile-members
qi create -f qcow2 "$work/m.qcow2" 1M
w "$work/m.qcow2" -c 'write -P 3 0 64k'
qi create -f qcow2 "$work/m2.qcow2" 2M
python3 - "$work/m.qcow2" "$work/m2.qcow2" <<'PY'
import io, sys, tarfile
img, img2 = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read()
def reg(t, name, data):
    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
def special(t, name, typ, **kw):
    i = tarfile.TarInfo(name); i.type = typ
    for k, v in kw.items(): setattr(i, k, v)
    t.addfile(i)
with tarfile.open('h.tar', 'w', format=tarfile.GNU_FORMAT) as t:
    reg(t, 'disk.qcow2', img)
    reg(t, '../escape.qcow2', img)
    reg(t, '/abs/evil.qcow2', img)
    reg(t, 'a/../../up.txt', b'text\n')
    special(t, 'sym.qcow2', tarfile.SYMTYPE, linkname='/etc/passwd')
    special(t, 'hard.qcow2', tarfile.LNKTYPE, linkname='../../../outside/secret.qcow2')
    special(t, 'fifo', tarfile.FIFOTYPE)
    special(t, 'zero', tarfile.CHRTYPE, devmajor=1, devminor=5)
    special(t, 'sda', tarfile.BLKTYPE, devmajor=8, devminor=0)
    reg(t, 'disk.qcow2', img2)  # a duplicate: the last one wins, as on extraction
PY
touch "$work/marker"
scan 0
expect "SELECT code FROM v_findings WHERE code LIKE 'member-%' ORDER BY code, message" \
	"$(printf 'member-absolute\nmember-duplicate\nmember-traversal\nmember-traversal')"
expect "SELECT path, kind FROM v_entries ORDER BY path" "$(printf '%s\n' \
	"$name/h.tar!fifo|member-fifo" "$name/h.tar!hard.qcow2|member-hardlink" \
	"$name/h.tar!sda|member-device" "$name/h.tar!sym.qcow2|member-symlink" \
	"$name/h.tar!zero|member-device" "$name/h.tar!a/../../up.txt|not-an-image" | sort)"
# with duplicates, the member extraction would leave (the last) is the image
expect "SELECT count(*), virtual_size FROM v_images WHERE path = '$work/c/$name/h.tar!disk.qcow2'" "1|2097152"
expect "SELECT count(*) FROM v_images WHERE path IN ('$work/c/$name/h.tar!../escape.qcow2', '$work/c/$name/h.tar!/abs/evil.qcow2') AND status = 'ok'" "2"
check "files were written outside the database" [ -z "$(find "$work" -newer "$work/marker" -not -type d \
	-not -path "$work/db/*" -not -path "$work/tmp/*" -not -path "$work/c/$name/h.tar")" ]
check "an extracted name exists" [ ! -e "$work/c/escape.qcow2" ] && [ ! -e /abs/evil.qcow2 ]
end

begin tar-backing-escape
python3 - "$work/m.qcow2" <<'PY'
import io, sys, tarfile, struct
img = bytearray(open(sys.argv[1], 'rb').read())
def with_backing(name):
    d = bytearray(img)
    d[4:8] = struct.pack('>I', 2)
    d[2048:2048 + len(name)] = name
    d[8:20] = struct.pack('>QI', 2048, len(name))
    return bytes(d)
def reg(t, name, data):
    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
with tarfile.open('b.tar', 'w') as t:
    reg(t, 'base.qcow2', bytes(img))
    reg(t, 'sub/ok.qcow2', with_backing(b'./../base.qcow2'))
    reg(t, 'abs.qcow2', with_backing(b'/etc/passwd'))
    reg(t, 'sibling.qcow2', with_backing(b'../sibling.qcow2'))
    reg(t, 'deep.qcow2', with_backing(b'sub/../../../../outside/secret.qcow2'))
    reg(t, 'proto.qcow2', with_backing(b'nbd://127.0.0.1/x'))
    reg(t, 'link.qcow2', with_backing(b'l.qcow2'))
    i = tarfile.TarInfo('l.qcow2'); i.type = tarfile.SYMTYPE; i.linkname = '../sibling.qcow2'; t.addfile(i)
PY
cp "$work/m.qcow2" sibling.qcow2 # next to the archive, in the root: still not a member
scan 0
expect "SELECT status, backing_path FROM v_images WHERE path = '$work/c/$name/b.tar!sub/ok.qcow2'" "ok|$name/b.tar!base.qcow2"
expect "SELECT path, status FROM v_links WHERE path LIKE '$work/c/$name/b.tar!%' ORDER BY path" "$(printf '%s\n' \
	"$name/b.tar!abs.qcow2|outside-archive" "$name/b.tar!deep.qcow2|outside-archive" \
	"$name/b.tar!link.qcow2|not-regular" "$name/b.tar!proto.qcow2|protocol" \
	"$name/b.tar!sibling.qcow2|outside-archive" "$name/b.tar!sub/ok.qcow2|ok")"
end

# A gzip / zstd stream of a tar holding 1 GiB of zeros, made of concatenated
# members/frames of a compressed MiB (so it is built in well under a second).
mkbomb() { # mkbomb OUT gzip|zstd
	python3 - "$@" <<'PY'
import gzip, subprocess, sys, tarfile
out, kind = sys.argv[1], sys.argv[2]
i = tarfile.TarInfo('zeros.img'); i.size = 1 << 30
hdr = i.tobuf(tarfile.GNU_FORMAT)
def comp(b):
    if kind == 'gzip':
        return gzip.compress(b, 9)
    return subprocess.run(['zstd', '-q', '-19', '-c'], input=b, stdout=subprocess.PIPE, check=True).stdout
mib = comp(b'\0' * (1 << 20))
with open(out, 'wb') as f:
    f.write(comp(hdr))
    for _ in range(1024):
        f.write(mib)
    f.write(comp(b'\0' * 1024))
PY
}

begin bomb-gzip
mkbomb bomb.tar.gz gzip
scan 0
# a raw disk by name, as the same file outside an archive is (README, "What is an image")
expect "SELECT i.format, i.recognised_by, i.virtual_size, i.status FROM images i JOIN files f ON f.id = i.file_id WHERE f.path = '$work/c/$name/bomb.tar.gz!zeros.img'" "raw|name|1073741824|ok"
check "the spool reached the disk" [ "$(du -s "$work/tmp" | cut -f1)" -lt 1024 ]
end

begin bomb-zstd
mkbomb bomb.tar.zst zstd
scan 0
expect "SELECT count(*) FROM v_images WHERE path = '$work/c/$name/bomb.tar.zst!zeros.img'" "1"
end

begin bomb-double
# gzip inside zstd: 1 GiB from a few hundred bytes, past the ratio cap
mkbomb "$work/b.tar.gz" gzip
zstd -q -19 -c "$work/b.tar.gz" >bomb.tar.gz.zst
scan 1
expect "SELECT code FROM v_findings WHERE path = '$work/c/$name/bomb.tar.gz.zst'" "archive-limit"
end

begin sparse-member
truncate -s 100G big.raw
printf 'first' | dd of=big.raw conv=notrunc status=none
printf 'middle' | dd of=big.raw bs=1 seek=$((50 << 30)) conv=notrunc status=none
qi create -f qcow2 -b big.raw -F raw over.qcow2
tar --sparse -cf s.tar big.raw over.qcow2
rm big.raw over.qcow2
scan 0
expect "SELECT format, virtual_size, status FROM v_images WHERE path = '$work/c/$name/s.tar!big.raw'" "raw|107374182400|ok"
expect "SELECT status, chain_depth FROM v_images WHERE path = '$work/c/$name/s.tar!over.qcow2'" "ok|1"
expect "SELECT count(*), sum(length) FROM v_map WHERE path = '$work/c/$name/s.tar!big.raw' AND data = 1" "2|8192"
check "the sparse member was expanded" [ "$(du -s "$work/tmp" | cut -f1)" -lt 1024 ]
end

# A GNU sparse map is held whole by libarchive before it returns the header
# (48 bytes an entry, from 4 bytes of map text): 5 M entries in a 20 KB
# .tar.gz took 240 MB, 30 M in 117 KB took 1.4 GB.  A member's headers are capped (4 MiB, counted in
# decompressed bytes); the members before it stay recorded.
begin sparse-map-bomb
cp "$work/m.qcow2" ok.qcow2
python3 - <<'PY'
import gzip, subprocess, tarfile
n = 5_000_000
body = b"%d\n" % n + b"0\n0\n" * n
body += b"\0" * (-len(body) % 512)
i = tarfile.TarInfo("GNUSparseFile.0/big.raw")
i.size = len(body)
i.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                 "GNU.sparse.name": "big.raw", "GNU.sparse.realsize": "1048576"}
ok = open("ok.qcow2", "rb").read()
o = tarfile.TarInfo("ok.qcow2")
o.size = len(ok)
data = (o.tobuf(format=tarfile.PAX_FORMAT) + ok + b"\0" * (-len(ok) % 512) +
        i.tobuf(format=tarfile.PAX_FORMAT) + body + b"\0" * 1024)
open("map.tar.gz", "wb").write(gzip.compress(data, 6))
open("map.tar.zst", "wb").write(subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout)
PY
rm ok.qcow2
scan 1
for f in map.tar.gz map.tar.zst; do
	expect "SELECT status FROM v_images WHERE path = '$work/c/$name/$f!ok.qcow2'" "ok"
	expect "SELECT code, message LIKE '%headers (pax, GNU sparse map) take more than 4194304 bytes%' FROM v_findings WHERE path = '$work/c/$name/$f'" "archive-limit|1"
done
if ! ldd "$IMGAUDIT" 2>/dev/null | grep -q 'lib[at]san'; then # RSS means nothing under the sanitizers
	rm -f "$db"*
	/usr/bin/time -f %M -o "$work/db/$name.rss" "$IMGAUDIT" scan --db "$db" --quiet -j 1 "$work/c/$name" 2>/dev/null
	kib=$(tail -1 "$work/db/$name.rss")
	[ "$kib" -le 131072 ] || problems+=" peak RSS $kib KiB, over 128 MiB;"
fi
end

begin truncated-stream
for i in 1 2 3 4; do
	qi create -f qcow2 "$work/t$i.qcow2" 4M
	w "$work/t$i.qcow2" -c "write -P $i 0 1M" # random enough not to compress away
	head -c 1M /dev/urandom | dd of="$work/t$i.qcow2" bs=64k seek=5 conv=notrunc status=none
done
tar -C "$work" -czf cut.tar.gz t1.qcow2 t2.qcow2 t3.qcow2 t4.qcow2
truncate -s $(($(stat -c %s cut.tar.gz) / 2)) cut.tar.gz
scan 1
expect "SELECT status FROM v_images WHERE path = '$work/c/$name/cut.tar.gz!t1.qcow2'" "ok"
expect "SELECT count(*) FROM v_images WHERE path = '$work/c/$name/cut.tar.gz!t4.qcow2'" "0"
expect "SELECT count(*) > 0 FROM v_findings WHERE path LIKE '$work/c/$name/cut.tar.gz%' AND code IN ('archive-error', 'member-truncated')" "1"
end

begin zip-encrypted
cp "$work/m.qcow2" plain.qcow2
cp "$work/m2.qcow2" secret.qcow2
zip -q -0 z.zip plain.qcow2
zip -q -P hunter2 z.zip secret.qcow2
rm plain.qcow2 secret.qcow2
scan 1
expect "SELECT status FROM v_images WHERE path = '$work/c/$name/z.zip!plain.qcow2'" "ok"
expect "SELECT count(*) FROM v_images WHERE path = '$work/c/$name/z.zip!secret.qcow2' AND status = 'ok'" "0"
check "the encrypted member is not recorded with a reason" [ -n "$(sqlite3 "$db" "
	SELECT reason FROM v_entries WHERE path = '$work/c/$name/z.zip!secret.qcow2' UNION ALL
	SELECT status FROM v_images WHERE path = '$work/c/$name/z.zip!secret.qcow2' UNION ALL
	SELECT code FROM v_findings WHERE path LIKE '$work/c/$name/z.zip%'")" ]
end

begin nested
cp "$work/m.qcow2" d.qcow2
tar -cf l1.tar d.qcow2
tar -cf l2.tar l1.tar
tar -cf l3.tar l2.tar
tar -cf l4.tar l3.tar
gzip l4.tar
rm d.qcow2 l1.tar l2.tar
mv l3.tar keep.tar
scan 1
# nested twice: fine; three times: recorded as an archive, not opened
expect "SELECT status FROM v_images WHERE path = '$work/c/$name/keep.tar!l2.tar!l1.tar!d.qcow2'" "ok"
expect "SELECT count(*) FROM v_images WHERE path LIKE '$work/c/$name/l4.tar.gz!%'" "0"
check "too deep a nesting is not recorded" [ -n "$(sqlite3 "$db" "
	SELECT 1 FROM v_findings WHERE path LIKE '$work/c/$name/l4.tar.gz%' AND code = 'archive-limit' UNION ALL
	SELECT 1 FROM v_entries WHERE path LIKE '$work/c/$name/l4.tar.gz%' AND reason LIKE '%deep%'")" ]
end

begin long-names
# pax names of 200 KB each: 40 MB of names from a few hundred KB of gzip
python3 - <<'PY'
import tarfile
with tarfile.open('n.tar.gz', 'w:gz', compresslevel=1) as t:
    t.addfile(tarfile.TarInfo('short'))
    for n in range(200):
        t.addfile(tarfile.TarInfo('d%d/' % n + 'a' * 200000))
PY
scan 1
expect "SELECT code, message LIKE '%member 2 has a name of 200003 bytes, over the cap of 4096 bytes%' FROM v_findings WHERE path = '$work/c/$name/n.tar.gz'" "archive-limit|1"
expect "SELECT count(*) FROM v_entries WHERE path LIKE '$work/c/$name/n.tar.gz!%'" "1"
check "the database holds the long names" [ "$(stat -c %s "$db")" -lt 4000000 ]
end

begin ova-refs
cp "$work/m.qcow2" disk1.qcow2
cat >vm.ovf <<'OVF'
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
    <File ovf:href="disk1.qcow2" ovf:id="f1"/>
    <File ovf:href="missing.vmdk" ovf:id="f2"/>
    <File ovf:href="../../../outside/secret.qcow2" ovf:id="f3"/>
    <File ovf:href="/etc/passwd" ovf:id="f4"/>
    <File ovf:href="http://127.0.0.1/disk.vmdk" ovf:id="f5"/>
  </References>
  <DiskSection>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d1" ovf:fileRef="f1"/>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d2" ovf:fileRef="f2"/>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d3" ovf:fileRef="f3"/>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d4" ovf:fileRef="f4"/>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d5" ovf:fileRef="f5"/>
  </DiskSection>
</Envelope>
OVF
tar -cf vm.ova vm.ovf disk1.qcow2
rm vm.ovf disk1.qcow2
scan 0
# hrefs are data: recorded, never opened; only a member of the OVA is linked
expect "SELECT disk_id, href, member_file_id IS NOT NULL FROM ovf_disks ORDER BY disk_id" "$(printf '%s\n' \
	"d1|disk1.qcow2|1" "d2|missing.vmdk|0" "d3|../../../outside/secret.qcow2|0" "d4|/etc/passwd|0" \
	"d5|http://127.0.0.1/disk.vmdk|0")"
expect "SELECT status FROM v_images WHERE path = '$work/c/$name/vm.ova!disk1.qcow2'" "ok"
end

begin ova-capacity
cp "$work/m.qcow2" disk1.qcow2
cat >vm.ovf <<'OVF'
<?xml version="1.0"?>
<Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="disk1.qcow2" ovf:id="f1"/></References>
  <DiskSection>
    <Disk ovf:capacity="99999999999999999999" ovf:capacityAllocationUnits="byte * 2^40" ovf:diskId="d1" ovf:fileRef="f1"/>
    <Disk ovf:capacity="16777216" ovf:capacityAllocationUnits="byte * 2^60" ovf:diskId="d2" ovf:fileRef="f1"/>
  </DiskSection>
</Envelope>
OVF
tar -cf vm.ova vm.ovf disk1.qcow2
rm vm.ovf disk1.qcow2
scan 1
expect "SELECT code, message LIKE '%capacity%' FROM v_findings WHERE path = '$work/c/$name/vm.ova'" "archive-error|1"
expect "SELECT status FROM v_images WHERE path = '$work/c/$name/vm.ova!disk1.qcow2'" "ok"
end

# ---------------------------------------------------------------- the database

begin db-corrupt-page
base a.qcow2
scan 0
# overwrite one page in the middle of the database (not the header)
pages=$(sqlite3 "$db" "PRAGMA page_count")
psize=$(sqlite3 "$db" "PRAGMA page_size")
python3 - "$db" $(((pages / 2) * psize)) "$psize" <<'PY'
import sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(int(sys.argv[2])); f.write(b'\xa5' * int(sys.argv[3]))
PY
sum=$(md5sum <"$db")
base b.qcow2
scan 3
check "the corrupted database was modified" [ "$(md5sum <"$db")" == "$sum" ]
check "no message about the damage" grep -qi 'corrupt\|damaged\|malformed' "$work/db/$name.err"
end

begin db-future-version
base a.qcow2
scan 0
sqlite3 "$db" "PRAGMA user_version = 999"
sum=$(md5sum <"$db")
scan 3
check "a newer database was modified" [ "$(md5sum <"$db")" == "$sum" ]
end

begin db-full
# 20 raw files of 2000 extents each (distinct layers: each has its own runs),
# each under an overlay: some 80,000 layer runs, more than a 1 MiB file
# system holds.  The first scan (one overlay) fits; the second fills the
# disk: exit 3, the first stays visible and sound, and a later scan (of a
# copy, with room) marks the dead one aborted.
python3 - <<'PY'
for n in range(1, 21):
    with open('many%d.raw' % n, 'wb') as f:
        for i in range(2000):
            f.seek(i * 8192)
            f.write(bytes([n]) * 4096)
        f.truncate(2000 * 8192)
PY
for i in $(seq 1 20); do qi create -f qcow2 -b "many$i.raw" -F raw "o$i.qcow2"; done
mkdir -p "$work/full"
if mount -t tmpfs -o size=1m tmpfs "$work/full" 2>/dev/null; then
	dbsave=$db
	db=$work/full/db.sqlite
	scan 0 --exclude 'o[2-9]*' --exclude 'o1?.qcow2' --exclude 'many[2-9]*' --exclude 'many1?.raw'
	scan 3
	check "no message about the full disk" grep -qi 'full' "$work/db/$name.err"
	expect "SELECT count(*) FROM v_images" "2"
	expect "SELECT status FROM scans ORDER BY id LIMIT 1" "complete"
	expect "PRAGMA quick_check" "ok"
	cp "$db" "$dbsave"
	[ -e "$db-wal" ] && cp "$db-wal" "$dbsave-wal"
	umount "$work/full"
	db=$dbsave
	scan 0
	expect "SELECT status FROM scans ORDER BY id" "$(printf 'complete\naborted\ncomplete')"
	expect "SELECT count(*) FROM v_images" "40"
else
	echo "skip: cannot mount a tmpfs for the disk-full case"
fi
end

begin db-readers
for i in $(seq 1 30); do base "i$i.qcow2"; w "i$i.qcow2" -c 'write -P 1 0 64k'; done
scan 0
for i in $(seq 31 50); do base "i$i.qcow2"; done
cd "$work/c" || exit 1
IMGAUDIT_NO_INCREMENTAL=1 IMGAUDIT_TEST_WRITER_DELAY_MS=10 "$IMGAUDIT" scan --db "$db" --quiet "$name" & # 2 s: readers start in time on a loaded machine
BG=$!
seen=""
while kill -0 "$BG" 2>/dev/null; do
	seen+="$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM v_images" 2>&1) "
done
wait "$BG"
rc=$?
BG=
seen+="$(sqlite3 "$db" "SELECT count(*) FROM v_images")"
cd "$work/c/$name" || exit 1
[ "$rc" = 0 ] || problems+=" second scan exit $rc;"
bad=$(tr ' ' '\n' <<<"$seen" | grep -v '^$' | grep -vx '30' | grep -vx '50' | sort -u | tr '\n' ' ')
[ -z "$bad" ] || problems+=" a reader saw a half scan: $bad;"
tr ' ' '\n' <<<"$seen" | grep -qx 30 || problems+=" no reader saw the old scan;"
[ "${seen##* }" = 50 ] || problems+=" the new scan is not visible;"
end

# A reader that sets no busy timeout (the sqlite3 shell's default) is refused
# while another connection holds the database file's exclusive lock. In WAL
# mode only a connection's close takes it, to checkpoint and delete the WAL
# when it is the last one; the scanner's close did, and a reader opening then
# got "database is locked" (six reads in 800 while a 1-image root was rescanned
# 300 times). The scanner checkpoints
# without it and leaves the emptied WAL in place.
begin db-close-no-exclusive-lock
base a.qcow2
scan 0
w a.qcow2 -c 'write -P 1 0 64k'
cd "$work/c" || exit 1
ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" strace -f -qq -y -e trace=fcntl -o "$work/db/$name.locks" "$IMGAUDIT" scan --db "$db" --quiet "$name" ||
	problems+=" rescan failed;"
cd "$work/c/$name" || exit 1
grep -q "<$db>, F_SETLK.*F_RDLCK" "$work/db/$name.locks" || problems+=" no lock seen: the check is blind;"
! grep "<$db>, F_SETLKW\?, {l_type=F_WRLCK" "$work/db/$name.locks" || problems+=" the scan write-locked the database file;"
check "the WAL is left in place" test -e "$db-wal"
expect "SELECT sum(length) FROM v_map WHERE data = 1" "65536"
end

echo "hostile scan: $(($(date +%s) - t0)) s"
lib_summary
