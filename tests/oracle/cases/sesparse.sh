#!/bin/bash
# VMDK seSparse extents (ESXi snapshots on VMFS 6): qemu-img cannot create
# them but reads them, so extents are built byte by byte here, every grain
# directory and grain table entry kind and hostile header included, and both
# tools must print the same maps and exit statuses.
. "$(dirname "$0")/../lib.sh"

# mk_se FILE [KEY=VALUE...]: a seSparse extent.  Header fields (sectors unless
# said): capacity, version, grain, gtsize, flags, r1..r4, vh (volatile header
# offset), gd (GD offset), gdsize, gt (GT area offset), grains, pad (a non-zero
# byte in the constant header padding); volatile: vmagic, replay, vpad;
# gde=I:VALUE sets GD entry I, gte=T:I:VALUE entry I of table T (in the GT
# area), len=BYTES the file length (default: up to the last grain used + 1).
mk_se() {
	python3 - "$@" <<'EOF'
import struct, sys
path = sys.argv[1]
o = dict(capacity=2048 * 64, version=0x200000001, grain=8, gtsize=64, flags=0, r1=0, r2=0, r3=0,
         r4=0, vh=1, gd=8, gdsize=2, gt=16, grains=16 + 64 * 4, pad=0, vmagic=0xcafecafe,
         replay=0, vpad=0, len=None)
gde, gte = {}, {}
for kv in sys.argv[2:]:
    k, v = kv.split('=', 1)
    if k == 'gde':
        i, val = v.split(':')
        gde[int(i, 0)] = int(val, 0)
    elif k == 'gte':
        t, i, val = v.split(':')
        gte[(int(t, 0), int(i, 0))] = int(val, 0)
    else:
        o[k] = int(v, 0)
M = (1 << 64) - 1
h = bytearray(512)
fields = [0xcafebabe, o['version'], o['capacity'], o['grain'], o['gtsize'], o['flags'], o['r1'],
          o['r2'], o['r3'], o['r4'], o['vh'], 1, 2, 2, 4, 4, o['gd'], o['gdsize'], o['gt'], 64 * 4,
          0, 0, 0, 0, o['grains'], 1024]
struct.pack_into('<26Q', h, 0, *[f & M for f in fields])
if o['pad']:
    h[300] = o['pad']
v = bytearray(512)
struct.pack_into('<4Q', v, 0, o['vmagic'], 1, 2, o['replay'])
if o['vpad']:
    v[500] = o['vpad']
img = bytearray(512 * 272)  # headers, GD and four tables at their default places
img[0:512] = h
vo = (o['vh'] * 512) & M
if vo + 512 <= len(img):
    img[vo:vo + 512] = v
for i, val in gde.items():
    off = o['gd'] * 512 + 8 * i
    if off + 8 <= len(img):
        struct.pack_into('<Q', img, off, val & M)
last = -1
for (t, i), val in gte.items():
    off = (o['gt'] + 64 * t) * 512 + 8 * i
    if off + 8 <= len(img):
        struct.pack_into('<Q', img, off, val & M)
    if val >> 60 == 3:
        n = ((val & 0x0fff000000000000) >> 48) | ((val & 0x0000ffffffffffff) << 12)
        if n < 4096:
            last = max(last, n)
# allocated grains hold a pattern (grain n is filled with byte n + 1) where
# the grains offset leaves room for them after the tables
g0 = o['grains'] * 512
if last >= 0 and 272 * 512 <= g0 < (64 << 20):
    img += bytes(g0 - len(img))
    for n in range(last + 1):
        img += bytes([(n + 1) & 0xff]) * 4096
data = bytes(img)
if o['len'] is not None:
    data = (data + bytes(max(0, o['len'] - len(data))))[:o['len']]
open(path, 'wb').write(data)
EOF
}

# mk_desc FILE "EXTENT LINE"... [parent=NAME]: a seSparse descriptor.
mk_desc() {
	local f=$1 parent=""
	shift
	{
		echo "# Disk DescriptorFile"
		echo "version=1"
		echo "CID=12345678"
		echo "parentCID=ffffffff"
		echo 'createType="seSparse"'
		for a in "$@"; do
			case $a in
			parent=*) parent=${a#parent=} ;;
			*) echo "$a" ;;
			esac
		done
		[ -n "$parent" ] && echo "parentFileNameHint=\"$parent\""
		echo 'ddb.virtualHWVersion = "14"'
	} >"$f"
}

# se_case NAME [KEY=VALUE...]: one extent x-NAME.se under d-NAME.vmdk, compared.
se_case() {
	local n=$1
	shift
	mk_se "x-$n.se" "$@"
	mk_desc "d-$n.vmdk" "RW 131072 SESPARSE \"x-$n.se\""
	oracle_map "d-$n.vmdk"
	oracle_map -f vmdk "d-$n.vmdk"
}

A=0x1000000000000000 # GD: table 0
B=0x1000000000000001 # GD: table 1

scenario sesparse-kinds
se_case empty
# Allocated grains: the 12-bit low part sits at bits 48-59.
se_case alloc gde=0:$A gte=0:0:0x3000000000000000 gte=0:1:0x3001000000000000 \
	gte=0:2:0x3002000000000000 gte=0:5:0x3003000000000000 gte=0:6:0x3004000000000000
se_case zero gde=0:$A gte=0:0:0x1000000000000000 gte=0:1:0x2000000000000000 \
	gte=0:2:0x2fffffffffffffff gte=0:3:0x1234000000000001 gte=0:7:0x3000000000000000
se_case second gde=1:$B gte=1:4095:0x3000000000000000 gte=1:0:0x3001000000000000
se_case last gde=1:$A gte=0:4095:0x3000000000000000 # GD entry 1 -> table 0
se_case shared gde=0:$A gde=1:$A gte=0:3:0x3000000000000000 # two GD entries, one table
# Grain numbers beyond the file (the high part at bits 0-47): data past the end.
se_case far gde=0:$A gte=0:0:0x3000000000000001 gte=0:1:0x3fff00ffffffffff
# Grains at sector 0 are unallocated (grains offset 0, grain 0).
se_case sector0 grains=0 gde=0:$A gte=0:0:0x3000000000000000 gte=0:1:0x3001000000000000
mk_se x-sector0.se grains=0 gde=0:$A gte=0:0:0x3000000000000000
oracle_map -s 4096 -l 5000 d-sector0.vmdk
se_case alloc2 gde=0:$A gte=0:0:0x3000000000000000 gte=0:1:0x3001000000000000
oracle_map -s 100 d-alloc2.vmdk
oracle_map -s 4095 -l 2 d-alloc2.vmdk
oracle_map -l 8191 d-alloc2.vmdk

scenario sesparse-hostile
# GD entries that are not tables, or tables beyond 2^32 sectors: an I/O error
# where qemu's comes (the map printed so far stays).
se_case gdbad gde=1:0x2000000000000000 gde=0:$A gte=0:0:0x3000000000000000
se_case gdbad2 gde=0:0x1000000100000000
se_case gdfar gde=1:0x10000000ffffffff gde=0:$A gte=0:9:0x3000000000000000
se_case gtfar gt=0xffffffc0 gde=0:$B # sector 2^32 exactly
se_case gtmax gt=0xffffff80 gde=0:$A # the last sector below 2^32: past the end, zeroes
se_case gtwrap gt=0xffffffffffffffc0 gde=0:$B # wraps to sector 0: no table
# GT entries of no known kind.
se_case gtbad gde=0:$A gte=0:0:0x3000000000000000 gte=0:2:0x0000000000000005
se_case gtbad4 gde=0:$A gte=0:1:0x4000000000000000
se_case gtbadf gde=0:$A gte=0:1:0xf000000000000000
# Capacity beyond what the GD covers: an error past the last table.
se_case short gdsize=1 capacity=200000 gde=63:$A gte=0:4095:0x3000000000000000
# GD size products as qemu computes them: 2^58 + 1 sectors wrap to 64 entries.
se_case gdwrap gdsize=0x400000000000001 gde=0:$A gte=0:0:0x3000000000000000
se_case gdbig gdsize=0x80001 # 2^25 + 64 entries: over qemu's cap
se_case gdmax gdsize=0x80000 # 2^25 entries: the cap itself
# The GD past the end of the file, or beyond any file.
se_case gdeof gd=100000
se_case gdhuge gd=0x40000000000000
se_case gdneg gd=0x8000000000000000
# Tables past the end of the file read as zeroes.
se_case gteof gde=0:$A len=$((512 * 20))
# Headers qemu refuses.
for kv in version=0x100000001 grain=16 grain=0 gtsize=32 flags=1 r1=1 r3=7 pad=1 vmagic=0 \
	replay=1 vpad=9 vh=100000 vh=0x40000000000000 vh=0x80000000000000; do
	se_case "hdr-${kv%%=*}" "$kv"
done
se_case cap0 capacity=0
se_case capodd capacity=1001 gde=0:$A gte=0:125:0x3000000000000000
se_case caphuge capacity=0x7fffffffffffffff gdsize=0x80000
se_case caphuge2 capacity=0xffffffffffffffff
se_case caphuge3 capacity=0x3fffffffffffff gdsize=0x80000
# Host offsets beyond 2^63: qemu prints them negative, imgaudit refuses
# (a difference listed in the README).
mk_se x-neg.se grains=0x0fffffffffffffff gde=0:$A gte=0:0:0x3000000000000000
mk_desc d-neg.vmdk 'RW 131072 SESPARSE "x-neg.se"'
check "d-neg.vmdk: imgaudit stops at the grain beyond 2^63 (rc 1, '[' printed)" \
	eval '[ "$("$IMGAUDIT" map --output=json d-neg.vmdk 2>/dev/null; echo "rc=$?")" = "[rc=1" ] &&
		"$IMGAUDIT" map --output=json d-neg.vmdk 2>&1 >/dev/null | grep -q "beyond 2^63"'
check "qemu prints a negative offset for d-neg.vmdk" \
	eval 'qemu-img map --output=json d-neg.vmdk | grep -q "\"offset\": -"'

scenario sesparse-desc
mk_se a.se gde=0:$A gte=0:0:0x3000000000000000 gte=0:1:0x2000000000000000
# The descriptor's size does not count: the header's capacity does.
mk_desc small.vmdk 'RW 100 SESPARSE "a.se"'
oracle_map small.vmdk
mk_desc zero.vmdk 'RW 0 SESPARSE "a.se"' # a zero-sized line is skipped
oracle_map zero.vmdk
mk_desc ro.vmdk 'RDONLY 131072 SESPARSE "a.se"'
oracle_map ro.vmdk
# Two seSparse extents, and one after a flat extent.
mk_se b.se gde=1:$A gte=0:7:0x3000000000000000
truncate -s 1M flat.bin
mk_desc two.vmdk 'RW 131072 SESPARSE "a.se"' 'RW 131072 SESPARSE "b.se"'
oracle_map two.vmdk
oracle_map -s 67108000 -l 4000000 two.vmdk
mk_desc mixed.vmdk 'RW 2048 FLAT "flat.bin" 0' 'RW 131072 SESPARSE "b.se"'
oracle_map mixed.vmdk
# Missing, or not seSparse.
mk_desc missing.vmdk 'RW 131072 SESPARSE "nope.se"'
oracle_map missing.vmdk
qemu-img create -q -f vmdk plain.vmdk 1M
mk_desc wrong.vmdk 'RW 2048 SESPARSE "plain.vmdk"'
oracle_map wrong.vmdk
mk_desc wrong2.vmdk 'RW 131072 SPARSE "a.se"'
oracle_map wrong2.vmdk

scenario sesparse-chain
# A snapshot over a base: unallocated grains read through to the parent.
qemu-img create -q -f vmdk base.vmdk 64M
qemu-io -f vmdk -c 'write -P 1 0 64k' -c 'write -P 2 1M 64k' -c 'write -P 3 40M 64k' base.vmdk >/dev/null
mk_se top.se gde=0:$A gte=0:0:0x3000000000000000 gte=0:256:0x2000000000000000 \
	gte=0:257:0x1000000000000000 gte=0:300:0x3001000000000000
mk_desc top.vmdk 'RW 131072 SESPARSE "top.se"' parent=base.vmdk
oracle_map top.vmdk
oracle_map -f vmdk top.vmdk
oracle_map -s 1M -l 1M top.vmdk
# A parent shorter than the snapshot, and a chain of two snapshots.
qemu-img create -q -f vmdk small.vmdk 1M
qemu-io -f vmdk -c 'write -P 1 0 1M' small.vmdk >/dev/null
mk_desc top2.vmdk 'RW 131072 SESPARSE "top.se"' parent=small.vmdk
oracle_map top2.vmdk
mk_se top3.se gde=2:$A gte=0:0:0x3000000000000000
mk_desc top3.vmdk 'RW 131072 SESPARSE "top3.se"' parent=top.vmdk
oracle_map top3.vmdk

oracle_summary
