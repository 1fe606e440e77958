#!/bin/bash
# Fail the 1st, 2nd, ... Nth read of every format's fixtures, from the Nth on
# (persistent) and the Nth alone (transient): each run must end in a clean
# error or in the full map, never in a crash, a hang, a leak (the sanitizer
# run of the suite runs this too) or a different map; and every fault must
# fire (a fixture whose reads the injector never sees tests nothing).
. "$(dirname "$0")/lib.sh"
FAULT_MAP=${FAULT_MAP:?set FAULT_MAP to the fault_map test tool}
here=$HERE
need qemu-img qemu-io python3
lib_workdir faults
q() { qemu-img create -q "$@"; }
w() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }
# run [--true-map] [-f FMT] IMAGE: every N in both modes, and each fault fired
run() {
	local re='^.*: ([0-9]+) reads; persistent: ([0-9]+) fired, [0-9]+ clean errors; transient: ([0-9]+) fired, [0-9]+ clean errors$'
	if ! out=$(timeout 120 "$FAULT_MAP" "$@" 2>&1); then
		bad "$* : $out"
	elif ! [[ "$out" =~ $re ]]; then
		bad "$* : unexpected output: $out"
	elif [ "${BASH_REMATCH[1]}" -eq 0 ] || [ "${BASH_REMATCH[2]}" != "${BASH_REMATCH[1]}" ] ||
		[ "${BASH_REMATCH[3]}" != "${BASH_REMATCH[1]}" ]; then
		bad "$* : not every fault fired: $out"
	else
		ok
		echo "ok   $out"
	fi
}
# transient N WANT IMAGE: the Nth read alone fails, once; WANT is "error"
# (imgaudit must give up on the image with a message: an error row in a scan)
# or "either" (a clean error or the very map of the run without faults; the
# tool checks the map).  A different map is never right.
transient() {
	local n=$1 want=$2
	shift 2
	if ! out=$(timeout 120 "$FAULT_MAP" --transient "$n" "$@" 2>&1); then
		bad "transient $n $* : $out"
	elif [ "$want" = error ] && ! [[ "$out" == *": read $n failed alone, 1 fired: error: "?* ]]; then
		bad "transient $n $* : expected an error: $out"
	else
		ok
		echo "ok   $out"
	fi
}

truncate -s 1M r.raw
dd if=/dev/urandom of=r.raw bs=4k seek=5 count=3 conv=notrunc status=none
run r.raw
q -f qcow2 -o cluster_size=4k q.qcow2 1M
w q.qcow2 -c 'write -P 1 0 12k' -c 'write -c 64k 4k' -c 'write -z 128k 8k' -c 'write -P 2 900k 4k'
run q.qcow2
q -f qcow2 -o extended_l2=on,cluster_size=64k x.qcow2 1M
w x.qcow2 -c 'write -P 1 2k 2k' -c 'write -z 100k 4k'
run x.qcow2
q -f qcow2 -o preallocation=metadata,cluster_size=64k p.qcow2 1M
w p.qcow2 -c 'write -P 1 0 64k'
run p.qcow2
q -f qcow2 -b r.raw -F raw c1.qcow2
w c1.qcow2 -c 'write -P 3 0 4k'
q -f qcow2 -b c1.qcow2 -F qcow2 c2.qcow2
w c2.qcow2 -c 'write -P 4 512k 4k'
run c2.qcow2
q -f qcow2 -o data_file=d.raw e.qcow2 1M
w e.qcow2 -c 'write -P 1 0 64k'
run e.qcow2
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse; do
	q -f vmdk -o subformat=$sub v-$sub.vmdk 1M
	w v-$sub.vmdk -c 'write -P 5 0 64k' -c 'write -P 6 512k 4k'
	run v-$sub.vmdk
done
qemu-img convert -O vmdk -o subformat=streamOptimized q.qcow2 s.vmdk
run s.vmdk
q -f vpc d.vhd 4M
w d.vhd -c 'write -P 7 1M 4k'
run d.vhd
q -f vpc -o subformat=fixed f.vhd 1M
run -f vpc f.vhd
q -f vhdx h.vhdx 8M
w h.vhdx -c 'write -P 8 0 4k' -c 'write -P 8 3M 1M'
run h.vhdx
q -f vdi i.vdi 4M
w i.vdi -c 'write -P 9 1M 4k'
run i.vdi
q -f qed e1.qed 1M
w e1.qed -c 'write -P 9 0 64k'
q -f qed -b e1.qed -F qed e2.qed
w e2.qed -c 'write -P 9 512k 64k'
run e2.qed
q -f qcow o.qcow 1M
w o.qcow -c 'write -P 9 0 8k'
run o.qcow
q -f parallels pa.img 4M
w pa.img -c 'write -P 9 1M 4k'
run pa.img
# chains through the other formats' parent links, and the remaining subformats
q -f vmdk vp.vmdk 1M
w vp.vmdk -c 'write -P 1 0 64k'
q -f vmdk -b vp.vmdk -F vmdk vc.vmdk
w vc.vmdk -c 'write -P 2 512k 64k'
run vc.vmdk
q -f qcow ob.qcow 1M
w ob.qcow -c 'write -P 1 0 8k'
q -f qcow -b ob.qcow -F qcow oc.qcow
w oc.qcow -c 'write -P 2 64k 8k'
run oc.qcow
q -f vdi -o static=on is.vdi 2M
w is.vdi -c 'write -P 9 1M 4k'
run is.vdi
q -f vmdk -o subformat=twoGbMaxExtentFlat tf.vmdk 1M
run tf.vmdk
q -f vhdx -o block_size=1M hp.vhdx 8M
w hp.vhdx -c 'write -P 1 0 4M'
q -f vhdx -o block_size=1M hc.vhdx 8M
w hc.vhdx -c 'write -P 2 1M 1M'
python3 "$here/hostile_lib.py" vhdx-diff hc.vhdx '.\hp.vhdx'
run hc.vhdx
# creation measures the PBKDF speed, which fails now and then on a busy machine
for try in 1 2 3 4 5; do
	qemu-img create -q -f luks --object secret,id=s0,data=x -o key-secret=s0,iter-time=10 \
		l.luks 1M 2>/dev/null && break
done
run l.luks
# dmg (qemu-img cannot create it): blkx tables in the plist and in a resource fork
for v in xml rsrc; do
	python3 "$here/../tools/mkdmg.py" m-$v.dmg $([ $v = rsrc ] && echo --rsrc)
	run m-$v.dmg
	run --true-map m-$v.dmg
done

# bochs, cloop and a seSparse extent under its descriptor, built byte by byte
# (qemu-img cannot create them).
python3 - <<'EOF'
import struct, zlib
h = bytearray(512)
h[0:23] = b'Bochs Virtual HD Image\0'
h[32:40] = b'Redolog\0'
h[48:56] = b'Growing\0'
struct.pack_into('<5IIQ', h, 64, 0x20000, 512, 4, 512, 4096, 0, 16384)
open('b.bochs', 'wb').write(bytes(h) + struct.pack('<4I', 0, 0xffffffff, 0xffffffff, 0xffffffff))
magic = b'#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n'
blocks = [zlib.compress(bytes([i + 1]) * 4096) for i in range(64)]
offs, o = [], 136 + 8 * 65
for b in blocks:
    offs.append(o)
    o += len(b)
offs.append(o)
open('c.cloop', 'wb').write(magic + bytes(128 - len(magic)) + struct.pack('>II', 4096, 64) +
                            b''.join(struct.pack('>Q', x) for x in offs) + b''.join(blocks))
se = bytearray(512 * 300)
struct.pack_into('<26Q', se, 0, 0xcafebabe, 0x200000001, 131072, 8, 64, 0, 0, 0, 0, 0, 1, 1,
                 2, 2, 4, 4, 8, 2, 16, 256, 0, 0, 0, 0, 272, 1024)
struct.pack_into('<4Q', se, 512, 0xcafecafe, 1, 2, 0)
struct.pack_into('<2Q', se, 8 * 512, 0x1000000000000000, 0x1000000000000001)
struct.pack_into('<3Q', se, 16 * 512, 0x3000000000000000, 0x2000000000000000, 0x3001000000000000)
struct.pack_into('<Q', se, (16 + 64) * 512 + 8 * 4095, 0x3002000000000000)
open('e.se', 'wb').write(bytes(se) + b'\x05' * (3 * 4096))
open('se.vmdk', 'w').write('# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n'
                           'createType="seSparse"\nRW 131072 SESPARSE "e.se"\n')
EOF
run b.bochs
run c.cloop
run se.vmdk

# Transient faults one at a time: the first read (the header) failing alone
# must fail the image, whatever the format, even though every later read
# would succeed (no retry that could mask a flaky disk, no guess at the format
# from what follows: the scan records an error row for that image).
for f in q.qcow2 c2.qcow2 e.qcow2 v-monolithicSparse.vmdk s.vmdk d.vhd h.vhdx i.vdi e2.qed \
	o.qcow pa.img l.luks m-xml.dmg b.bochs c.cloop se.vmdk; do
	transient 1 error "$f"
done
transient 1 error -f vpc f.vhd
# the second read of a qcow2 chain and of a VHDX, and the last read of a chain:
# a clean error or the same map
transient 2 either c2.qcow2
transient 2 either h.vhdx
last=$("$FAULT_MAP" c2.qcow2 | sed -n 's/^.*: \([0-9]*\) reads;.*/\1/p')
transient "${last:-0}" either c2.qcow2
# a read past the last one never fires: the tool must say so, not pass
if "$FAULT_MAP" --transient 1000000 c2.qcow2 >/dev/null 2>&1; then bad "a fault that never fires passes"; else ok; fi

# The binary itself under a transient fault (tests/tools/fault_preload.c,
# LD_PRELOAD): the Kth read of one image of a chain fails once with EIO, for
# every K.  `imgaudit scan` must record an error for that image (an error
# status in v_images, or the file unreadable in v_entries) and exit 1, or
# record exactly the map of the run without the fault; the other images'
# rows never change.  `imgaudit map` must exit 1 with one message, having
# printed at most the start of the right map (as qemu-img map does), or print
# the very same map.
FAULT_PRELOAD=${FAULT_PRELOAD:?set FAULT_PRELOAD to the fault_preload test library}
preload_env=(LD_PRELOAD="$FAULT_PRELOAD")
# a sanitized binary wants its runtime first; the shim only wraps pread64
ldd "$IMGAUDIT" 2>/dev/null | grep -q libasan && preload_env+=(ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
mkdir -p pre/store
cd pre || exit 1
q -f qcow2 store/base.qcow2 1M
w store/base.qcow2 -c 'write -P 1 0 64k'
q -f qcow2 -b base.qcow2 -F qcow2 store/bad.qcow2
w store/bad.qcow2 -c 'write -P 2 128k 64k' -c 'write -z 512k 64k'
q -f qcow2 store/good.qcow2 1M
w store/good.qcow2 -c 'write -P 3 0 64k'
touch -m -d '-1 hour' store/*
rows() { # rows DB WHERE: the image and map rows, by path
	sqlite3 "$1" "SELECT path, format, virtual_size, status, error FROM v_images WHERE $2 ORDER BY path;
		SELECT * FROM v_map WHERE $2 ORDER BY path, start"
}
echo "bad.qcow2 0" >fault_preload.conf
env "${preload_env[@]}" "$IMGAUDIT" scan --quiet --db ref.db store
eq "scan without a fault" "$?" "0"
reads=$(grep -c '^read' fault_preload.log 2>/dev/null)
[ "${reads:-0}" -gt 0 ] && ok || bad "the preload library saw no read of bad.qcow2"
"$IMGAUDIT" map --output=json store/bad.qcow2 >ref.map
others=$(rows ref.db "path <> '$WORK/pre/store/bad.qcow2'")
errors=0
for k in $(seq 1 "${reads:-0}"); do
	rm -f fault_preload.log k.db k.db-*
	echo "bad.qcow2 $k" >fault_preload.conf
	env "${preload_env[@]}" "$IMGAUDIT" scan --quiet --db k.db store 2>k.err
	rc=$?
	eq "scan, read $k of bad.qcow2 fails: the fault fired once" "$(grep -c 'failed$' fault_preload.log)" "1"
	eq "scan, read $k fails: the other images' rows" "$(rows k.db "path <> '$WORK/pre/store/bad.qcow2'")" "$others"
	flagged=$(sqlite3 k.db "SELECT (SELECT count(*) FROM v_images WHERE path = '$WORK/pre/store/bad.qcow2'
		AND status <> 'ok' AND error <> '') + (SELECT count(*) FROM v_entries
		WHERE path = '$WORK/pre/store/bad.qcow2' AND kind = 'unreadable' AND detail <> '')")
	if [ "$flagged" -gt 0 ]; then
		errors=$((errors + 1))
		eq "scan, read $k fails: an error row, exit 1" "$rc" "1"
		eq "scan, read $k fails: no map rows" "$(sqlite3 k.db "SELECT count(*) FROM v_map WHERE path = '$WORK/pre/store/bad.qcow2'")" "0"
	else
		eq "scan, read $k fails without an error: exit 0" "$rc" "0"
		eq "scan, read $k fails without an error: the same rows" "$(rows k.db "path = '$WORK/pre/store/bad.qcow2'")" \
			"$(rows ref.db "path = '$WORK/pre/store/bad.qcow2'")"
	fi
	rm -f fault_preload.log
	env "${preload_env[@]}" "$IMGAUDIT" map --output=json store/bad.qcow2 >k.map 2>k.err
	rc=$?
	if grep -q 'failed$' fault_preload.log; then
		if [ "$rc" = 1 ]; then
			# as qemu-img map: what was printed before the error stays, and must be
			# the start of the right map
			[[ "$(cat ref.map)" == "$(cat k.map)"* ]] && [ "$(wc -l <k.err)" = 1 ] && ok ||
				bad "map, read $k fails: not one message after a prefix of the map: $(cat k.map k.err)"
		else
			eq "map, read $k fails without an error: the same map" "$rc:$(cat k.map)" "0:$(cat ref.map)"
		fi
	else
		cmp -s k.map ref.map && ok || bad "map, read $k never made: a different map"
	fi
done
[ "$errors" -gt 0 ] && ok || bad "no transient fault gave an error row: the injector is blind"
echo "ok   scan and map under a transient fault at each of $reads reads: $errors error rows"
cd .. || exit 1

lib_summary test_faults
