#!/bin/bash
# qcow2 against qemu-img map: v2 and v3, zero/discard, compression (zlib,
# zstd), extended L2, cluster sizes, preallocation, external data files,
# encryption, snapshots, odd sizes, huge images, sparsified files, windows,
# corruption mid-map, patched header bits, and malformed headers.
. "$(dirname "$0")/../lib.sh"

# patch FILE OFFSET STRUCTFMT VALUE...: overwrite bytes with struct.pack(">FMT", VALUE...)
patch() {
	python3 - "$@" <<'EOF'
import struct, sys
f, off, fmt = sys.argv[1], int(sys.argv[2], 0), sys.argv[3]
# bash arithmetic is signed: take values modulo the field width
vals = [int(v, 0) % (1 << (8 * struct.calcsize('>' + c)))
        for v, c in zip(sys.argv[4:], fmt)]
with open(f, 'r+b') as h:
    h.seek(off)
    h.write(struct.pack('>' + fmt, *vals))
EOF
}

# be64 FILE OFFSET: print the big-endian u64 at OFFSET
be64() {
	python3 -c 'import struct,sys; h=open(sys.argv[1],"rb"); h.seek(int(sys.argv[2],0)); print(struct.unpack(">Q", h.read(8))[0])' "$1" "$2"
}

# crypt_compare MODE IMAGE SECRET: qemu needs the key, imgaudit does not
crypt_compare() {
	local mode=$1 img=$2 secret=$3 q i
	q=$(qemu-img map --output="$mode" --object "secret,id=s0,data=$secret" --image-opts \
		"driver=qcow2,file.filename=$img,encrypt.key-secret=s0" 2>/dev/null; echo "rc=$?")
	i=$("$IMGAUDIT" map --qemu-compat="$QEMU_COMPAT" --output="$mode" "$img" 2>/dev/null; echo "rc=$?")
	if [ "$q" == "$i" ]; then
		_pass
	else
		_fail "encrypted map --output=$mode $img"
		diff <(printf '%s\n' "$q") <(printf '%s\n' "$i") | head -20 | sed 's/^/    /'
	fi
}

scenario empty
qemu-img create -q -f qcow2 e.qcow2 1M
oracle_map e.qcow2
oracle_map -f raw e.qcow2
qemu-img create -q -f qcow2 zero.qcow2 0
oracle_map zero.qcow2

scenario data
qemu-img create -q -f qcow2 d.qcow2 4M
qemu-io -c 'write -P 1 0 64k' -c 'write -P 2 192k 128k' -c 'write -P 3 1M 4k' -c 'write -P 4 3M 1M' d.qcow2 >/dev/null
oracle_map d.qcow2
oracle_map -s 13000 -l 100000 d.qcow2
oracle_map -s 65536 -l 1 d.qcow2
oracle_map -s 200000 d.qcow2
oracle_map -s 8M d.qcow2

for compat in 1.1 0.10; do
	scenario "zero-$compat"
	qemu-img create -q -f qcow2 -o compat=$compat z.qcow2 1M
	qemu-io -c 'write -P 0xaa 0 256k' -c 'write -z 64k 64k' -c 'write -z -u 128k 64k' \
		-c 'discard 192k 64k' -c 'write -z 512k 64k' z.qcow2 >/dev/null
	oracle_map z.qcow2
done

scenario compressed-zlib
qemu-img create -q -f qcow2 c.qcow2 1M
qemu-io -c 'write -P 1 0 64k' -c 'write -c -P 2 128k 64k' -c 'write -c -P 3 192k 64k' \
	-c 'write -P 4 512k 64k' c.qcow2 >/dev/null
oracle_map c.qcow2

scenario compressed-zstd
qemu-img create -q -f qcow2 -o compression_type=zstd c.qcow2 1M
qemu-io -c 'write -c -P 2 0 64k' -c 'write -c -P 3 64k 64k' -c 'write -P 3 128k 64k' c.qcow2 >/dev/null
oracle_map c.qcow2

scenario compressed-convert
# whole images compressed by qemu-img convert -c, both compression types,
# with and without extended L2 (zero clusters stay unallocated)
qemu-img create -q -f qcow2 src.qcow2 4M
qemu-io -c 'write -P 1 0 1M' -c 'write -P 0 2M 64k' -c 'write -P 3 3M 100k' src.qcow2 >/dev/null
for ct in zlib zstd; do
	qemu-img convert -c -O qcow2 -o compression_type=$ct src.qcow2 c-$ct.qcow2
	oracle_map c-$ct.qcow2
	qemu-img convert -c -O qcow2 -o compression_type=$ct,extended_l2=on,cluster_size=16k src.qcow2 x-$ct.qcow2
	oracle_map x-$ct.qcow2
done

scenario extended-l2
qemu-img create -q -f qcow2 -o extended_l2=on x.qcow2 1M
qemu-io -c 'write -P 0xaa 2k 3k' -c 'write -z 8k 4k' -c 'write -P 1 64k 64k' -c 'write -z -u 70k 2k' \
	-c 'write -z 256k 64k' -c 'write -P 5 400k 1k' -c 'discard 64k 64k' -c 'write -P 6 640k 200k' x.qcow2 >/dev/null
oracle_map x.qcow2
oracle_map -s 3000 -l 500000 x.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=2M x2.qcow2 8M
qemu-io -c 'write -P 1 100k 70k' -c 'write -z 2M 64k' -c 'write -P 2 4M 4M' x2.qcow2 >/dev/null
oracle_map x2.qcow2

for cs in 512 1k 4k 16k 128k 1M 2M; do
	scenario "cluster-$cs"
	qemu-img create -q -f qcow2 -o cluster_size=$cs k.qcow2 16M
	qemu-io -c 'write -P 1 0 5k' -c 'write -P 2 1M 1M' -c 'write -z 3M 512' -c 'write -P 3 15M 1M' \
		-c 'write -P 4 8M 512' k.qcow2 >/dev/null
	oracle_map k.qcow2
done

for p in metadata falloc full; do
	scenario "prealloc-$p"
	qemu-img create -q -f qcow2 -o preallocation=$p p.qcow2 1M
	qemu-io -c 'write -P 0x11 64k 64k' -c 'write -P 0x22 200k 4k' p.qcow2 >/dev/null
	oracle_map p.qcow2
done

for rb in 1 2 64; do
	scenario "refcount-bits-$rb"
	qemu-img create -q -f qcow2 -o preallocation=metadata,refcount_bits=$rb p.qcow2 2M
	qemu-io -c 'write -P 0x11 64k 64k' p.qcow2 >/dev/null
	oracle_map p.qcow2
done

scenario prealloc-v2
qemu-img create -q -f qcow2 -o preallocation=metadata,compat=0.10 p.qcow2 1M
qemu-io -c 'write -P 0x11 64k 64k' p.qcow2 >/dev/null
oracle_map p.qcow2

scenario truncated-data
qemu-img create -q -f qcow2 t.qcow2 2M
qemu-io -c 'write -P 1 0 1M' t.qcow2 >/dev/null
truncate -s 800k t.qcow2
oracle_map t.qcow2
qemu-img create -q -f qcow2 -o preallocation=metadata u.qcow2 2M
qemu-io -c 'write -P 1 0 64k' u.qcow2 >/dev/null
truncate -s 600k u.qcow2
oracle_map u.qcow2

scenario bitmaps
qemu-img create -q -f qcow2 b.qcow2 1M
qemu-img bitmap --add b.qcow2 b0
qemu-io -c 'write -P 1 0 64k' b.qcow2 >/dev/null
oracle_map b.qcow2

scenario bitmaps-broken
# qemu loads persistent bitmaps at open and refuses an image whose bitmap
# directory or tables are broken, or where two usable bitmaps share a name
qemu-img create -q -f qcow2 b.qcow2 4M
qemu-img bitmap --add b.qcow2 aa
qemu-img bitmap --add b.qcow2 ab
qemu-io -c 'write -P 1 0 64k' -c 'write -P 1 2M 64k' b.qcow2 >/dev/null
# the bitmaps extension (after the feature name table), the directory, the first table
read -r ext dir tab < <(python3 - b.qcow2 <<'PY'
import struct, sys
h = open(sys.argv[1], 'rb').read()
off = struct.unpack('>I', h[100:104])[0]
while True:
    t, l = struct.unpack('>II', h[off:off + 8])
    if t == 0x23852875:
        break
    off += 8 + (l + 7) // 8 * 8
d = struct.unpack('>Q', h[off + 24:off + 32])[0]
print(off + 8, d, struct.unpack('>Q', h[d:d + 8])[0])
PY
)
oracle_map b.qcow2
# bm NAME OFFSET FMT VALUE [OFFSET FMT VALUE]...: a patched copy, compared
bm() {
	local n=$1; shift
	cp b.qcow2 "$n.qcow2"
	while [ $# -gt 0 ]; do patch "$n.qcow2" "$1" "$2" "$3"; shift 3; done
	oracle_map "$n.qcow2"
}
bm nb2 "$ext" I 3
bm nb1 "$ext" I 1
bm dirsize0 $((ext + 8)) Q 0
bm dirsize8 $((ext + 8)) Q 8
bm dirmax $((ext + 8)) Q 67107841
bm dirzero $((ext + 16)) Q 0
bm direof $((ext + 16)) Q $((1 << 40))
bm tsize0 $((dir + 8)) I 0
bm gran9 $((dir + 17)) B 9
bm gran9-in-use $((dir + 17)) B 9 $((dir + 12)) I 3
bm flags $((dir + 12)) I 6
bm type $((dir + 16)) B 2
bm extra $((dir + 20)) I 8
bm name-len $((dir + 18)) H 9
bm dup $((dir + 32 + 25)) B 0x61
bm dup-first-in-use $((dir + 32 + 25)) B 0x61 $((dir + 12)) I 3
bm dup-second-in-use $((dir + 32 + 25)) B 0x61 $((dir + 32 + 12)) I 3
bm dup-nul $((dir + 25)) B 0 $((dir + 32 + 25)) B 0
bm table-reserved "$tab" Q $(($(be64 b.qcow2 "$tab") | 2))
bm table-reserved-in-use "$tab" Q $(($(be64 b.qcow2 "$tab") | 2)) $((dir + 12)) I 3
bm table-unaligned "$tab" Q $(($(be64 b.qcow2 "$tab") + 512))
bm table-all-ones "$tab" Q 1
bm table-eof "$dir" Q $((1 << 40))
bm table-huge "$dir" Q $((0x7fffffffc0000000))
bm no-autoclear 88 Q 0

scenario data-file
qemu-img create -q -f qcow2 -o data_file=e.data ext.qcow2 1M
qemu-io -c 'write -P 0xaa 64k 64k' -c 'write -z 192k 64k' -c 'write -P 1 0 4k' ext.qcow2 >/dev/null
oracle_map ext.qcow2
qemu-img create -q -f qcow2 -o data_file=r.data,data_file_raw=on raw.qcow2 1M
qemu-io -c 'write -P 0xaa 64k 64k' -c 'write -z 192k 64k' raw.qcow2 >/dev/null
oracle_map raw.qcow2
mkdir sub
(cd sub && qemu-img create -q -f qcow2 -o data_file=d.raw s.qcow2 1M && qemu-io -c 'write -P 1 0 64k' s.qcow2 >/dev/null)
oracle_map sub/s.qcow2
(cd sub && oracle_map s.qcow2)

scenario encrypted
# qemu's LUKS iteration benchmark fails now and then here ("Unable to get
# accurate CPU usage"): retry a few times.
for try in 1 2 3 4 5 6; do
	rm -f l.qcow2
	qemu-img create -q -f qcow2 --object secret,id=s0,data=abc \
		-o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=100 l.qcow2 1M 2>/dev/null && break
done
qemu-img create -q -f qcow2 --object secret,id=s0,data=abc -o encrypt.format=aes,encrypt.key-secret=s0 \
	a.qcow2 1M
# a failed creation would make both tools fail alike and the comparison pass
check "the LUKS-encrypted qcow2 was created" [ -s l.qcow2 ]
check "the AES-encrypted qcow2 was created" [ -s a.qcow2 ]
for f in l.qcow2 a.qcow2; do
	qemu-io --object secret,id=s0,data=abc --image-opts -c 'write -P 0xaa 64k 64k' -c 'write -z 192k 64k' \
		"driver=qcow2,file.filename=$f,encrypt.key-secret=s0" >/dev/null
	crypt_compare json $f abc
	crypt_compare human $f abc
done

scenario snapshot
qemu-img create -q -f qcow2 s.qcow2 1M
qemu-io -c 'write -P 1 0 128k' -c 'write -P 2 512k 64k' s.qcow2 >/dev/null
qemu-img snapshot -c snap1 s.qcow2
qemu-io -c 'write -P 3 64k 64k' -c 'write -z 512k 64k' -c 'write -P 4 768k 64k' s.qcow2 >/dev/null
oracle_map s.qcow2

scenario snapshot-table
# qemu reads the snapshot table at open and refuses an entry with more than
# 1 KiB of extra data, or a table larger than 64 MiB (entries 8-aligned;
# past the end of the file everything reads as zeroes)
qemu-img create -q -f qcow2 g.qcow2 1M
qemu-io -c 'write -P 1 0 64k' g.qcow2 >/dev/null
qemu-img snapshot -c s1 g.qcow2
qemu-io -c 'write -P 2 64k 64k' g.qcow2 >/dev/null
# snaptable IN OUT N K: N real entries of 40 + 0xffff + 0xfff0 bytes at 8 MiB,
# the file ending after them, and K more entries counted (all zeroes)
snaptable() {
	python3 - "$@" <<'PY'
import struct, sys
src, dst, n, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
d = open(src, 'rb').read()
base = off = 8 << 20
with open(dst, 'wb') as f:
    f.write(d)
    for _ in range(n):
        off = (off + 7) // 8 * 8
        f.seek(off)
        f.write(struct.pack('>QIHHIIQII', 0, 0, 0xffff, 0xfff0, 0, 0, 0, 0, 0))
        off += 40 + 0xffff + 0xfff0
    f.truncate(off)
    f.seek(60)
    f.write(struct.pack('>IQ', n + k, base))
PY
}
snaptable g.qcow2 fits.qcow2 511 2970
oracle_map fits.qcow2
snaptable g.qcow2 over.qcow2 511 2971
oracle_map over.qcow2
snaptable g.qcow2 over512.qcow2 512 0
oracle_map over512.qcow2
so=$(be64 g.qcow2 64)
for extra in 1024 1025 65535; do
	cp g.qcow2 extra$extra.qcow2
	patch extra$extra.qcow2 $((so + 36)) I $extra
	oracle_map extra$extra.qcow2
done

scenario odd-size
qemu-img create -q -f qcow2 o.qcow2 1000000
qemu-io -c 'write -P 1 0 64k' -c 'write -P 2 960k 40000' o.qcow2 >/dev/null
oracle_map o.qcow2
cp o.qcow2 p.qcow2
patch p.qcow2 24 Q 1000
oracle_map p.qcow2

scenario huge
qemu-img create -q -f qcow2 h.qcow2 4T
qemu-io -c 'write -P 1 0 64k' -c 'write -P 2 2047500M 1G' -c 'write -z 3T 64k' -c "write -P 3 $((4 * 1024 * 1024 * 1024 * 1024 - 65536)) 64k" h.qcow2 >/dev/null
oracle_map h.qcow2
oracle_map -s 2000G -l 100G h.qcow2
# runs longer than INT_MAX bytes, metadata preallocation over 2 MiB clusters
qemu-img create -q -f qcow2 -o preallocation=metadata,cluster_size=2M m.qcow2 12G
qemu-io -c 'write -P 1 5G 4M' m.qcow2 >/dev/null
oracle_map m.qcow2
qemu-img create -q -f qcow2 -o preallocation=falloc,cluster_size=2M f.qcow2 5G
oracle_map f.qcow2

scenario sparsified
qemu-img create -q -f qcow2 s.qcow2 4M
qemu-io -c 'write -P 7 0 2M' -c 'write -P 0 2M 64k' s.qcow2 >/dev/null
oracle_map s.qcow2
fallocate --dig-holes s.qcow2
oracle_map s.qcow2

scenario corrupt-l1
qemu-img create -q -f qcow2 c.qcow2 2G
qemu-io -c 'write -P 1 0 64k' -c 'write -P 2 1G 64k' c.qcow2 >/dev/null
l1=$(be64 c.qcow2 40)
v=$(be64 c.qcow2 $((l1 + 16)))
patch c.qcow2 $((l1 + 16)) Q $((v + 0x200))
oracle_map c.qcow2

scenario corrupt-l2
# l2 FILE: the offset of the first L2 table
l2() { echo $(($(be64 "$1" "$(be64 "$1" 40)") & 0x00fffffffffffe00)); }
qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 1M
qemu-io -c 'write -P 1 0 128k' -c 'write -P 2 512k 64k' v2.qcow2 >/dev/null
patch v2.qcow2 $(($(l2 v2.qcow2) + 3 * 8)) Q 1
oracle_map v2.qcow2
qemu-img create -q -f qcow2 un.qcow2 1M
qemu-io -c 'write -P 1 0 128k' -c 'write -P 2 512k 64k' un.qcow2 >/dev/null
patch un.qcow2 $(($(l2 un.qcow2) + 8 * 8)) Q $((0x8000000000000000 | 0x70200))
oracle_map un.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on inv.qcow2 1M
qemu-io -c 'write -P 1 0 128k' -c 'write -P 2 512k 64k' inv.qcow2 >/dev/null
patch inv.qcow2 $(($(l2 inv.qcow2) + 8 * 16 + 8)) Q $(((1 << 32) | 1))
oracle_map inv.qcow2
cp inv.qcow2 inv2.qcow2
patch inv2.qcow2 $(($(l2 inv2.qcow2) + 8 * 16 + 8)) Q 0
patch inv2.qcow2 $(($(l2 inv2.qcow2) + 3 * 16 + 8)) Q 4
oracle_map inv2.qcow2

scenario dirty
qemu-img create -q -f qcow2 d.qcow2 1M
qemu-io -c 'write -P 1 0 64k' d.qcow2 >/dev/null
patch d.qcow2 72 Q 1
oracle_map d.qcow2
patch d.qcow2 72 Q 2
oracle_map d.qcow2

scenario dirty-lazy-refcounts
# a writer killed with lazy refcounts leaves the dirty bit and refcounts
# behind the L2 tables: the map follows the L2 tables
qemu-img create -q -f qcow2 -o lazy_refcounts=on lz.qcow2 2M
(qemu-io -c 'write -P 1 0 64k' -c 'write -P 2 1M 64k' -c 'sigraise 9' lz.qcow2 >/dev/null 2>&1; :) 2>/dev/null
check "the killed writer left the dirty bit" [ "$(be64 lz.qcow2 72)" = 1 ]
oracle_map lz.qcow2

scenario chain
qemu-img create -q -f qcow2 b.qcow2 1M
qemu-io -c 'write -P 1 0 128k' -c 'write -z 256k 64k' b.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b b.qcow2 -F qcow2 t.qcow2
qemu-io -c 'write -P 2 64k 128k' t.qcow2 >/dev/null
oracle_map t.qcow2
qemu-img create -q -f raw r.raw 512k
qemu-io -f raw -c 'write -P 3 100k 4k' r.raw >/dev/null
qemu-img create -q -f qcow2 -b r.raw -F raw tr.qcow2 1M
qemu-io -c 'write -P 2 0 64k' tr.qcow2 >/dev/null
oracle_map tr.qcow2
# backing format extension renamed: the backing file is probed
off=$(python3 -c 'import sys,struct; d=open("t.qcow2","rb").read(4096); print(d.find(bytes.fromhex("e2792aca")))')
[ "$off" -gt 0 ] && patch t.qcow2 "$off" I 0x12345678
oracle_map t.qcow2

scenario malformed
qemu-img create -q -f qcow2 good.qcow2 1M
qemu-io -c 'write -P 1 0 64k' good.qcow2 >/dev/null
head -c 50 good.qcow2 >short.qcow2
expect_fail short.qcow2
cp good.qcow2 l1eof.qcow2; patch l1eof.qcow2 40 Q $((1 << 30))
expect_fail l1eof.qcow2
cp good.qcow2 l2eof.qcow2; l1=$(be64 good.qcow2 40); patch l2eof.qcow2 "$l1" Q $((0x8000000000000000 | (1 << 30)))
expect_fail l2eof.qcow2
cp good.qcow2 cb8.qcow2; patch cb8.qcow2 20 I 8
expect_fail cb8.qcow2
cp good.qcow2 cb22.qcow2; patch cb22.qcow2 20 I 22
expect_fail cb22.qcow2
cp good.qcow2 l1big.qcow2; patch l1big.qcow2 36 I 0xffffffff
expect_fail l1big.qcow2
cp good.qcow2 l1small.qcow2; patch l1small.qcow2 24 Q $((1 << 40))
expect_fail l1small.qcow2
cp good.qcow2 ext.qcow2; patch ext.qcow2 112 II 0x12345678 65536
expect_fail ext.qcow2
cp good.qcow2 incompat.qcow2; patch incompat.qcow2 72 Q 0x20
expect_fail incompat.qcow2
cp good.qcow2 magic.qcow2; patch magic.qcow2 0 I 0x514649fa
expect_fail -f qcow2 magic.qcow2
cp good.qcow2 ver.qcow2; patch ver.qcow2 4 I 4
expect_fail ver.qcow2
cp good.qcow2 rorder.qcow2; patch rorder.qcow2 96 I 7
expect_fail rorder.qcow2

oracle_summary
