#!/bin/bash
# Hostile input for `imgaudit map`: references that try to leave the root,
# loops, FIFOs, devices and sockets as backing files, and header fields pushed
# to their edges.  Every case runs under strace; besides the exit status and a
# one-line message, the log must show that nothing outside the root was opened
# for reading, that no FIFO or device was opened for I/O, and that no socket
# was created.
. "$(dirname "$0")/lib.sh"
here=$HERE
lib="python3 $here/hostile_lib.py"
need strace
lib_workdir hostile
work=$WORK
root=$work/root
outside=$work/outside
mkdir -p "$root" "$outside"
cd "$root" || exit 1
q() { qemu-img create -q "$@"; }
w() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }
rebase() { qemu-img rebase -q -u -b "$2" -F "${3:-qcow2}" "$1"; }

q -f qcow2 "$outside/secret.qcow2" 1M
w "$outside/secret.qcow2" -c 'write -P 0x5e 0 64k'
head -c 65536 /dev/urandom >"$outside/secret.raw"
FORBIDDEN=("$outside/secret.qcow2" "$outside/secret.raw" "$outside/secret.vhdx" "$root/fifo" /dev/zero /dev/null /etc/hostname /etc/passwd)
FORBID=()
for f in "${FORBIDDEN[@]}"; do FORBID+=(--forbid "$f"); done
TRACED=$($lib traced)

# run_case NAME WANT_RC WANT_TEXT [--no-root] ARGS...
run_case() {
	local name=$1 want=$2 text=$3; shift 3
	local rootopt=(--allow-root="$root") log=$work/$name.strace rc out err problems=""
	if [ "${1:-}" = --no-root ]; then rootopt=(); shift; fi
	# LeakSanitizer cannot run under ptrace: the sanitizer build checks leaks elsewhere.
	out=$(ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" timeout 20 strace -f -qq -y -o "$log" \
		-e trace="$TRACED" "$IMGAUDIT" map "${rootopt[@]}" "$@" 2>"$work/err")
	rc=$?
	err=$(cat "$work/err")
	if [ "$want" = any ]; then
		# Truncated images: qemu maps what it can (exit 0) or stops mid-way (exit 1);
		# we must do one of those, and say so when data points past the end.
		case $rc in
		0) printf '%s' "$err" | grep -q 'past the end' || problems+=" exit 0 without a warning;" ;;
		1) [ -n "$err" ] || problems+=" exit 1 without a message;" ;;
		*) problems+=" exit $rc;" ;;
		esac
	elif [ "$rc" -ne "$want" ]; then
		problems+=" exit $rc, wanted $want;"
	fi
	if [ "$want" = 1 ]; then
		[ -z "$out" ] || problems+=" stdout not empty;"
		[ "$(printf '%s\n' "$err" | grep -vc 'warning:')" -eq 1 ] || problems+=" not one error line;"
	fi
	[ -z "$text" ] || printf '%s' "$err" | grep -qi -- "$text" || problems+=" message lacks '$text';"
	if ! j=$($lib judge-scan "$log" "$IMGAUDIT" --root "$root" "${FORBID[@]}"); then problems+=" $j;"; fi
	if [ -z "$problems" ]; then
		ok
	else
		FAIL=$((FAIL + 1))
		echo "FAIL $name:$problems"
		echo "    stderr: ${err:0:300}"
	fi
}

base() { q -f qcow2 "$1" 1M; }

# The judge itself must catch a program that reads a file outside the root,
# opens a FIFO, creates a socket, writes or creates a file in the root,
# removes one or takes a lock (so a blind judge cannot pass).
mkfifo canary-fifo
echo x >canary-victim
timeout 10 strace -f -qq -y -o "$work/canary.strace" -e trace="$TRACED" python3 -c '
import fcntl, os, socket, sys
open(sys.argv[1], "rb").read(1)
os.close(os.open("canary-fifo", os.O_RDONLY | os.O_NONBLOCK))
socket.socket()
open("canary-new", "wb").close()
os.unlink("canary-victim")
fcntl.flock(os.open("canary-new", os.O_RDONLY), fcntl.LOCK_SH)' "$outside/secret.raw"
j=$($lib judge-scan "$work/canary.strace" "$(command -v python3)" --root "$root")
for what in "outside the root" "FIFO" "socket" "for writing" "changed the file system" "lock"; do
	if grep -q "$what" <<<"$j"; then ok; else FAIL=$((FAIL + 1)); echo "FAIL the judge missed: $what"; fi
done
rm -f canary-fifo canary-new

# --- references leaving the root ---
base t-abs.qcow2; rebase t-abs.qcow2 "$outside/secret.qcow2"
run_case abs-path 1 "outside the allowed roots" t-abs.qcow2
base t-dotdot.qcow2; rebase t-dotdot.qcow2 ../outside/secret.qcow2
run_case dotdot 1 "outside the allowed roots" t-dotdot.qcow2
mkdir -p sub
base sub/t-deep.qcow2; rebase sub/t-deep.qcow2 ../../outside/secret.qcow2
run_case dotdot-deep 1 "outside the allowed roots" sub/t-deep.qcow2
ln -s "$outside/secret.qcow2" link.qcow2
base t-link.qcow2; rebase t-link.qcow2 link.qcow2
run_case symlink-file 1 "outside the allowed roots" t-link.qcow2
ln -s "$outside" linkdir
base t-linkdir.qcow2; rebase t-linkdir.qcow2 linkdir/secret.qcow2
run_case symlink-dir 1 "outside the allowed roots" t-linkdir.qcow2
base t-json.qcow2; rebase t-json.qcow2 'json:{"driver":"raw","file":{"driver":"file","filename":"/etc/passwd"}}' raw
run_case json 1 "protocol" t-json.qcow2
base t-nbd.qcow2; rebase t-nbd.qcow2 'nbd://127.0.0.1:10809/x' raw
run_case nbd-url 1 "protocol" t-nbd.qcow2
base t-http.qcow2; rebase t-http.qcow2 'http://127.0.0.1/disk.img' raw
run_case http-url 1 "protocol" t-http.qcow2
base t-file.qcow2; rebase t-file.qcow2 'file:/etc/passwd' raw
run_case file-protocol 1 "protocol" t-file.qcow2
q -f qcow2 -o data_file=d.raw t-data.qcow2 1M
$lib qcow2-ext t-data.qcow2 0x44415441 "$outside/secret.raw"
run_case data-file-abs 1 "outside the allowed roots" t-data.qcow2
$lib qcow2-ext t-data.qcow2 0x44415441 "../outside/secret.raw"
run_case data-file-dotdot 1 "outside the allowed roots" t-data.qcow2
$lib qcow2-ext t-data.qcow2 0x44415441 "nbd:127.0.0.1:10809"
run_case data-file-protocol 1 "protocol" t-data.qcow2
printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 128 FLAT "%s" 0\n' \
	"$outside/secret.raw" >ext-abs.vmdk
run_case vmdk-extent-abs 1 "outside the allowed roots" ext-abs.vmdk
printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 128 FLAT "../outside/secret.raw" 0\n' >ext-rel.vmdk
run_case vmdk-extent-dotdot 1 "outside the allowed roots" ext-rel.vmdk
printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 128 FLAT "/dev/zero" 0\n' >ext-dev.vmdk
run_case vmdk-extent-device 1 "" ext-dev.vmdk
run_case vmdk-extent-device-noroot 1 "character device" --no-root ext-dev.vmdk
q -f vmdk pbase.vmdk 1M
q -f vmdk -b pbase.vmdk -F vmdk t-parent.vmdk
python3 - t-parent.vmdk "$outside/secret.vmdk" <<'PY'
import sys
p, new = sys.argv[1], sys.argv[2].encode()
d = bytearray(open(p, 'rb').read())
i = d.index(b'parentFileNameHint="') + len(b'parentFileNameHint="')
j = d.index(b'"', i)
d[i:j] = new
open(p, 'wb').write(d)
PY
cp "$outside/secret.qcow2" "$outside/secret.vmdk"
run_case vmdk-parent-hint 1 "outside the allowed roots" t-parent.vmdk

q -f vhdx "$outside/secret.vhdx" 8M
q -f vhdx vx-parent.vhdx 8M
for c in "dotdot|..\\outside\\secret.vhdx" "abs|$outside/secret.vhdx" "good|.\\vx-parent.vhdx"; do
	q -f vhdx "vx-${c%%|*}.vhdx" 8M
	$lib vhdx-diff "vx-${c%%|*}.vhdx" "${c#*|}"
done
run_case vhdx-parent-dotdot 1 "outside the allowed roots" vx-dotdot.vhdx
run_case vhdx-parent-abs 1 "outside the allowed roots" vx-abs.vhdx
run_case vhdx-parent-inside 0 "" vx-good.vhdx

# --- loops, depth, special files ---
base self.qcow2; rebase self.qcow2 self.qcow2
run_case loop-self 1 "loop" self.qcow2
base la.qcow2; base lb.qcow2; rebase la.qcow2 lb.qcow2; rebase lb.qcow2 la.qcow2
run_case loop-two 1 "loop" la.qcow2
ln -s lc.qcow2 ld.qcow2; ln -s ld.qcow2 lc.qcow2
base t-symloop.qcow2; rebase t-symloop.qcow2 lc.qcow2
run_case symlink-loop 1 "symbolic links" t-symloop.qcow2
mkfifo fifo
base t-fifo.qcow2; rebase t-fifo.qcow2 fifo raw
run_case fifo-backing 1 "FIFO" t-fifo.qcow2
run_case fifo-top 1 "FIFO" fifo
run_case fifo-top-forced 1 "FIFO" -f qcow2 fifo
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' sock
base t-sock.qcow2; rebase t-sock.qcow2 sock raw
run_case socket-backing 1 "socket" t-sock.qcow2
base t-dev.qcow2; rebase t-dev.qcow2 /dev/zero raw
run_case device-backing 1 "" t-dev.qcow2
run_case device-backing-noroot 1 "character device" --no-root t-dev.qcow2
run_case device-top 1 "character device" --no-root /dev/null
mkdir adir
base t-dir.qcow2; rebase t-dir.qcow2 adir raw
run_case dir-backing 1 "directory" t-dir.qcow2
base t-gone.qcow2; rebase t-gone.qcow2 nothing-here.qcow2
run_case missing-backing 1 "does not exist" t-gone.qcow2
base $'new\nline.qcow2'
w $'new\nline.qcow2' -c 'write -P 1 0 64k'
base t-newline.qcow2; rebase t-newline.qcow2 $'new\nline.qcow2'
run_case newline-name 0 "" t-newline.qcow2

# --- header fields at their edges ---
edge() { # edge NAME WANT_RC FORMAT SIZE PATCH-ARGS...
	local name=$1 want=$2 fmt=$3 size=$4; shift 4
	q -f "$fmt" "e-$name.img" "$size"
	w "e-$name.img" -f "$fmt" -c 'write -P 1 0 4k'
	$lib patch "e-$name.img" "$@"
	run_case "edge-$name" "$want" "" "e-$name.img"
}
edge qcow2-cluster-bits-0 1 qcow2 1M 20 '>I' 0
edge qcow2-cluster-bits-8 1 qcow2 1M 20 '>I' 8
edge qcow2-cluster-bits-22 1 qcow2 1M 20 '>I' 22
edge qcow2-cluster-bits-huge 1 qcow2 1M 20 '>I' 0xffffffff
edge qcow2-l1-size-huge 1 qcow2 1M 36 '>I' 0xffffffff
edge qcow2-l1-past-eof 1 qcow2 1M 40 '>Q' 0x100000000
edge qcow2-l1-misaligned 1 qcow2 1M 40 '>Q' 0x30008
edge qcow2-refcount-past-eof 1 qcow2 1M 48 '>Q' 0x7fff00000000
edge qcow2-size-huge 1 qcow2 1M 24 '>Q' 0x4000000000000000
edge qcow2-size-zero 0 qcow2 1M 24 '>Q' 0
edge qcow2-backing-offset-past-eof 1 qcow2 1M 8 '>QI' 0x7fffffff0000 16
edge qcow2-backing-size-huge 1 qcow2 1M 8 '>QI' 512 0xffffffff
edge qcow2-unknown-incompat 1 qcow2 1M 72 '>Q' 0x10000000000
edge qcow2-version-4 1 qcow2 1M 4 '>I' 4
edge qcow2-snapshots-huge 1 qcow2 1M 60 '>IQ' 0xffffffff 0x10000
edge vmdk-grain-zero 1 vmdk 1M 20 '<Q' 0
edge vmdk-gtes-huge 1 vmdk 1M 44 '<I' 0xffffffff
edge vmdk-capacity-huge 1 vmdk 1M 12 '<Q' 0xffffffffffffff
edge vdi-block-size-zero 1 vdi 4M 376 '<I' 0
edge vdi-blocks-huge 1 vdi 4M 384 '<I' 0xffffffff
edge qed-cluster-zero 1 qed 1M 4 '<I' 0
edge qed-table-huge 1 qed 1M 8 '<I' 0xffffffff
edge parallels-bat-huge 1 parallels 4M 32 '<I' 0xffffffff
edge parallels-tracks-zero 1 parallels 4M 28 '<I' 0
edge vpc-block-size-zero 1 vpc 4M 544 '>I' 0
edge vpc-bat-past-eof 1 vpc 4M 528 '>Q' 0x7fffffff0000
edge vpc-bat-entries-huge 1 vpc 4M 540 '>I' 0xffffffff
# Impossible maps qemu prints without complaint: same map, plus a finding.
q -f qcow2 rb.qcow2 1M
w rb.qcow2 -c 'write -P 1 0 64k'
cp rb.qcow2 ov.qcow2
$lib patch rb.qcow2 0x40000 '>Q' 0x8000000000050002
run_case qcow2-l2-reserved-bits 0 "reserved bits" rb.qcow2
$lib patch ov.qcow2 0x40000 '>Q' 0x8000000000030000
run_case qcow2-data-on-l1-table 0 "lies on the L1 table" ov.qcow2
for fmt in qcow2 vmdk vpc vhdx vdi qed qcow parallels; do
	q -f "$fmt" "tr-$fmt.img" 4M
	w "tr-$fmt.img" -f "$fmt" -c 'write -P 1 0 64k'
	truncate -s 700 "tr-$fmt.img"
	run_case "truncated-$fmt" any "" -f "$fmt" "tr-$fmt.img"
done
{
	printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n'
	for i in $(seq 20000); do echo 'RW 8 FLAT "x.raw" 0'; done
} >many.vmdk
head -c 4096 /dev/zero >x.raw
run_case vmdk-20000-extents 1 "" many.vmdk # under the 20 s timeout: no quadratic parsing

# --- memory: peak RSS stays small whatever the headers claim ---
# rss_case NAME MAX_KIB ARGS...: map (JSON) and compare the peak RSS to the
# cap.  A sanitizer build keeps freed memory in quarantine and adds shadow
# memory: there the map must still finish cleanly, the figure is not judged
# (the normal build of the same suite judges it).
sanitized=false
ldd "$IMGAUDIT" 2>/dev/null | grep -q 'lib[at]san' && sanitized=true
rss_case() {
	local name=$1 max=$2 kib rc
	shift 2
	/usr/bin/time -f %M -o "$work/rss" "$IMGAUDIT" map --output=json "$@" >/dev/null 2>"$work/err"
	rc=$?
	kib=$(tail -1 "$work/rss")
	if [ "$rc" -gt 1 ] || grep -q 'Sanitizer\|runtime error' "$work/err"; then
		FAIL=$((FAIL + 1))
		echo "FAIL rss-$name: exit $rc: $(head -c 300 "$work/err")"
	elif $sanitized; then
		ok
		echo "note: rss-$name: $kib KiB under the sanitizers (not judged)"
	elif [ "$kib" -le "$max" ]; then
		ok
	else
		FAIL=$((FAIL + 1))
		echo "FAIL rss-$name: peak RSS $kib KiB, over $max KiB"
	fi
}
# A chain of 2 MiB-cluster qcow2 layers, each with an L2 table in use: an L2
# table held whole per layer would be 2 MiB each (the depth cap allows 256).
q -f qcow2 -o cluster_size=2M deep0.qcow2 1G
for i in $(seq 1 48); do
	q -f qcow2 -o cluster_size=2M -b "deep$((i - 1)).qcow2" -F qcow2 "deep$i.qcow2"
	w "deep$i.qcow2" -c "write -P 1 $((i * 4))M 4k"
done
rss_case deep-2m-chain 40960 deep48.qcow2
# Tables as large as the caps allow, in sparse files where they fit.
q -f qcow2 -o cluster_size=64k big-l1.qcow2 1G
python3 - big-l1.qcow2 <<'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    l1 = 4 * 1024 * 1024            # the L1 cap: 32 MiB of table
    f.seek(24); f.write(struct.pack('>Q', l1 << 29))
    f.seek(36); f.write(struct.pack('>I', l1))
    f.seek(40); f.write(struct.pack('>Q', 1 << 20))
    f.truncate(64 << 30)
PY
rss_case qcow2-l1-cap 20480 big-l1.qcow2
for spec in "vdi 384 <I 0xfffffff" "parallels 32 <I 0xfffffff" "vpc 540 >I 0xfffffff"; do
	set -- $spec
	q -f "$1" "big.$1" 4M
	w "big.$1" -f "$1" -c 'write -P 1 0 4k'
	$lib patch "big.$1" "$2" "$3" "$4"
	truncate -s 200G "big.$1"
	rss_case "$1-table-huge" 20480 "big.$1"
done
# dmg: a plist at qemu's 16 MiB cap (about 290 k chunks), and a resource fork
# of 1 Mi + 1 chunks, one more than the true map keeps (refused there).
python3 - <<'PY'
import base64, struct
def koly(rsrc, xml, sectors):
    k = bytearray(512)
    k[0:4] = b'koly'
    struct.pack_into('>QQ', k, 0x28, *rsrc)
    struct.pack_into('>QQ', k, 0xd8, *xml)
    struct.pack_into('>Q', k, 0x1ec, sectors)
    return bytes(k)
def mish(n):
    m = bytearray(204)
    m[0:4] = b'mish'
    return bytes(m) + b''.join(struct.pack('>IIQQQQ', 0, 0, i, 1, 0, 0) for i in range(n))
x = b'<plist><data>' + base64.b64encode(mish(290000)) + b'</data></plist>'
open('plist-cap.dmg', 'wb').write(x + koly((0, 0), (0, len(x)), 290000))
m = mish((1 << 20) + 1)
f = struct.pack('>III', 256, 0, 4 + len(m)).ljust(256, b'\0') + struct.pack('>I', len(m)) + m
open('chunk-cap.dmg', 'wb').write(f + koly((0, len(f)), (0, 0), (1 << 20) + 1))
PY
# (the binary's own baseline is about 11 MiB since it links libpq and its TLS
# and Kerberos libraries for the fleet: the budgets leave room for it)
rss_case dmg-plist-cap 30720 plist-cap.dmg
rss_case dmg-plist-cap-true-map 40960 --true-map plist-cap.dmg
rss_case dmg-chunk-cap 24576 chunk-cap.dmg
rss_case dmg-chunk-cap-true-map 47104 --true-map chunk-cap.dmg

lib_summary
