#!/bin/bash
# Backing chains: depth, names resolved like qemu, sizes that differ, raw at the
# bottom, probed backing formats, broken links, loops and the depth cap.
. "$(dirname "$0")/../lib.sh"

q() { qemu-img create -q "$@"; }
w() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }

scenario chain-3
q -f qcow2 base.qcow2 1M
w base.qcow2 -c 'write -P 1 0 192k' -c 'write -P 2 512k 64k'
q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2
w mid.qcow2 -c 'write -P 3 64k 64k' -c 'write -z 128k 64k'
q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2
w top.qcow2 -c 'write -P 4 256k 64k' -c 'discard 0 64k'
oracle_map top.qcow2
oracle_map mid.qcow2
oracle_map -s 100k -l 300k top.qcow2

scenario chain-deep
q -f qcow2 l0.qcow2 4M
w l0.qcow2 -c 'write -P 9 0 4M'
for i in $(seq 1 7); do
	q -f qcow2 -b l$((i - 1)).qcow2 -F qcow2 l$i.qcow2
	w l$i.qcow2 -c "write -P $i $((i * 256))k 64k" -c "write -z $((i * 512))k 32k"
done
oracle_map l7.qcow2
oracle_map l4.qcow2
oracle_map -s 1M -l 1M l7.qcow2

scenario chain-sizes
q -f qcow2 small.qcow2 256k
w small.qcow2 -c 'write -P 1 0 64k' -c 'write -P 1 192k 64k'
q -f qcow2 -b small.qcow2 -F qcow2 big.qcow2 1M
w big.qcow2 -c 'write -P 2 512k 64k'
oracle_map big.qcow2
q -f qcow2 large.qcow2 4M
w large.qcow2 -c 'write -P 1 0 4M'
q -f qcow2 -b large.qcow2 -F qcow2 shrunk.qcow2 1M
oracle_map shrunk.qcow2

scenario chain-raw-bottom
head -c 100000 /dev/urandom >odd.raw
q -f qcow2 -b odd.raw -F raw over.qcow2 1M
w over.qcow2 -c 'write -P 5 512k 64k'
oracle_map over.qcow2
truncate -s 2M sparse.raw
dd if=/dev/urandom of=sparse.raw bs=4096 seek=10 count=3 conv=notrunc status=none
q -f qcow2 -b sparse.raw -F raw over2.qcow2 2M
w over2.qcow2 -c 'write -P 5 0 4k'
oracle_map over2.qcow2
oracle_map -s 40000 -l 100000 over2.qcow2

scenario chain-mixed
# depth 5 over a raw file of odd size, overlays larger and smaller than
# their backing, several cluster sizes, then every backing format removed so
# that each layer is probed
head -c 300000 /dev/urandom >base.raw
truncate -s 700000 base.raw
q -f qcow2 -b base.raw -F raw m1.qcow2 3M
w m1.qcow2 -c 'write -P 1 1M 64k' -c 'write -z 0 4k'
q -f qcow2 -b m1.qcow2 -F qcow2 m2.qcow2 1500000
w m2.qcow2 -c 'write -P 2 100k 8k' -c 'discard 1M 64k'
q -f qcow2 -o cluster_size=4k -b m2.qcow2 -F qcow2 m3.qcow2 5M
w m3.qcow2 -c 'write -P 3 4M 4k' -c 'write -z -u 200k 8k'
q -f qcow2 -o cluster_size=2M -b m3.qcow2 -F qcow2 m4.qcow2 900k
q -f qcow2 -b m4.qcow2 -F qcow2 m5.qcow2 10M
w m5.qcow2 -c 'write -P 5 9M 4k'
oracle_map m5.qcow2
oracle_map -s 250k -l 1M m5.qcow2
for i in 1 2 3 4 5; do
	python3 - m$i.qcow2 <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b'); h = f.read(4096)
off = struct.unpack('>I', h[100:104])[0]
while True:
    t, l = struct.unpack('>II', h[off:off + 8])
    if t == 0: break
    if t == 0xe2792aca:
        f.seek(off); f.write(struct.pack('>I', 0x12345678)); break
    off += 8 + (l + 7) // 8 * 8
PY
done
oracle_map m5.qcow2
oracle_map m3.qcow2

scenario chain-paths
mkdir -p d/sub base
q -f qcow2 base/b.qcow2 1M
w base/b.qcow2 -c 'write -P 1 0 64k'
(cd d && q -f qcow2 -b ../base/b.qcow2 -F qcow2 t.qcow2 && q -f qcow2 -b t.qcow2 -F qcow2 sub/../u.qcow2)
oracle_map d/t.qcow2
oracle_map ./d/t.qcow2
oracle_map "$PWD/d/../d/t.qcow2"
oracle_map d/u.qcow2
(cd d && oracle_map t.qcow2)
q -f qcow2 -b "$PWD/base/b.qcow2" -F qcow2 abs.qcow2
oracle_map abs.qcow2

scenario chain-probed-backing
q -f qcow2 b.qcow2 1M
w b.qcow2 -c 'write -P 1 0 64k'
q -f qcow2 -b b.qcow2 -F qcow2 t.qcow2
# Rename the backing-format header extension so the format must be probed.
python3 - t.qcow2 <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b'); h = f.read(4096)
hl = struct.unpack('>I', h[100:104])[0]
off = hl
while True:
    t, l = struct.unpack('>II', h[off:off + 8])
    if t == 0: break
    if t == 0xe2792aca:
        f.seek(off); f.write(struct.pack('>I', 0x12345678)); break
    off += 8 + (l + 7) // 8 * 8
PY
oracle_map t.qcow2
q -f raw r.raw 1M
q -f qcow2 -b r.raw -F raw over-raw.qcow2
oracle_map over-raw.qcow2
# a backing format "file" (qemu's protocol driver) reads the file as raw
head -c 300000 /dev/urandom >f.raw
q -f qcow2 -u -b f.raw -F file over-file.qcow2 1M
w over-file.qcow2 -c 'write -P 1 64k 4k'
oracle_map over-file.qcow2

scenario chain-broken
q -f qcow2 gone.qcow2 1M
q -f qcow2 -b gone.qcow2 -F qcow2 t.qcow2
rm gone.qcow2
oracle_map t.qcow2
expect_fail t.qcow2
q -f qcow2 a.qcow2 1M
qemu-img rebase -q -u -b a.qcow2 -F qcow2 a.qcow2
expect_fail a.qcow2
q -f qcow2 b.qcow2 1M
q -f qcow2 -b b.qcow2 -F qcow2 c.qcow2
qemu-img rebase -q -u -b c.qcow2 -F qcow2 b.qcow2
expect_fail c.qcow2
mkfifo fifo
q -f qcow2 fb.qcow2 1M
q -f qcow2 -b fb.qcow2 -F qcow2 f.qcow2
qemu-img rebase -q -u -b fifo -F raw f.qcow2
timeout 5 "$IMGAUDIT" map f.qcow2 >/dev/null 2>&1
rc=$?
if [ $rc -eq 1 ]; then _pass; else _fail "a FIFO as backing file must be refused at once (rc=$rc)"; fi
qemu-img rebase -q -u -b 'json:{"driver":"raw","file":{"driver":"file","filename":"/etc/passwd"}}' -F raw f.qcow2
expect_fail f.qcow2
qemu-img rebase -q -u -b 'nbd://127.0.0.1:1/x' -F raw f.qcow2
expect_fail f.qcow2

scenario chain-too-deep
q -f qcow2 d0.qcow2 64k
for i in $(seq 1 260); do
	q -f qcow2 -u -b d$((i - 1)).qcow2 -F qcow2 d$i.qcow2 64k
done
oracle_map d200.qcow2
expect_fail d260.qcow2

oracle_summary
