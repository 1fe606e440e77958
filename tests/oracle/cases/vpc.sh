#!/bin/bash
# vpc (VHD): fixed, dynamic and differencing disks against qemu-img map, and
# the true map of differencing disks (where qemu ignores the parent) against
# expected output computed from images we generate from the VHD spec.
. "$(dirname "$0")/../lib.sh"

# vhd_patch FILE FIELD=VALUE...: rewrite footer fields (at 0 if a copy is
# there, and at the end) and fix the checksum.  Fields: type, creator,
# size (current size), chs (c/h/s), csum (a raw checksum, no fixing).
vhd_patch() {
	python3 - "$@" <<'EOF'
import struct, sys
path, args = sys.argv[1], dict(a.split('=', 1) for a in sys.argv[2:])
d = bytearray(open(path, 'rb').read())
for at in ([0] if d[:8] == b'conectix' else []) + [len(d) - 512]:
    f = d[at:at + 512]
    if 'type' in args: f[60:64] = struct.pack('>I', int(args['type']))
    if 'creator' in args: f[28:32] = args['creator'].encode().ljust(4, b'\0')[:4]
    if 'size' in args: f[48:56] = struct.pack('>Q', int(args['size']))
    if 'chs' in args:
        c, h, s = map(int, args['chs'].split('/'))
        f[56:60] = struct.pack('>HBB', c, h, s)
    f[64:68] = b'\0\0\0\0'
    csum = (~sum(f)) & 0xffffffff
    if 'csum' in args: csum = int(args['csum'], 0)
    f[64:68] = struct.pack('>I', csum)
    d[at:at + 512] = f
open(path, 'wb').write(d)
EOF
}

# dyn_patch FILE FIELD=VALUE...: rewrite dynamic header fields.
# Fields: bs (block size), entries (max table entries), bat (table offset),
# bat0 (BAT entry 0), magic.
dyn_patch() {
	python3 - "$@" <<'EOF'
import struct, sys
path, args = sys.argv[1], dict(a.split('=', 1) for a in sys.argv[2:])
d = bytearray(open(path, 'rb').read())
h = struct.unpack('>Q', d[16:24])[0]
if 'bs' in args: d[h + 32:h + 36] = struct.pack('>I', int(args['bs'], 0))
if 'entries' in args: d[h + 28:h + 32] = struct.pack('>I', int(args['entries'], 0))
if 'bat' in args: d[h + 16:h + 24] = struct.pack('>Q', int(args['bat'], 0))
if 'magic' in args: d[h:h + 8] = args['magic'].encode()
if 'bat0' in args:
    t = struct.unpack('>Q', d[h + 16:h + 24])[0]
    d[t:t + 4] = struct.pack('>I', int(args['bat0'], 0))
open(path, 'wb').write(d)
EOF
}

scenario dynamic
qemu-img create -q -f vpc d.vhd 20M
qemu-io -f vpc -c 'write -P 0xaa 4M 4k' -c 'write -P 0xbb 10M 64k' -c 'write -z 14M 1M' \
	d.vhd >/dev/null
oracle_map d.vhd
oracle_map -f vpc d.vhd
oracle_json -s 13000 d.vhd
oracle_json -s 4194305 -l 1 d.vhd
oracle_json -s 5M -l 7M d.vhd

scenario dynamic-empty
qemu-img create -q -f vpc e.vhd 64M
oracle_map e.vhd

scenario force-size
qemu-img create -q -f vpc -o force_size=on f.vhd 5M
oracle_map f.vhd
qemu-img create -q -f vpc -o force_size=on g.vhd 9M
qemu-io -f vpc -c 'write -P 1 0 512' -c 'write -P 2 8M 1M' g.vhd >/dev/null
oracle_map g.vhd

scenario block-size
qemu-img create -q -f vpc -o subformat=dynamic s.vhd 3M
qemu-io -f vpc -c 'write -P 1 1M 4k' s.vhd >/dev/null
dyn_patch s.vhd bs=0x100000
oracle_map s.vhd

scenario fixed
qemu-img create -q -f vpc -o subformat=fixed x.vhd 5M
qemu-io -f vpc -c 'write -P 0xaa 0 4k' -c 'write -P 0xbb 2M 64k' x.vhd >/dev/null
oracle_map x.vhd
oracle_map -f vpc x.vhd
oracle_json -f vpc -s 1000 -l 3M x.vhd
qemu-img create -q -f vpc -o subformat=fixed,force_size=on y.vhd 3M
oracle_map -f vpc y.vhd
# A fixed disk claiming more than the file holds: the tail reads as zero.
qemu-img create -q -f vpc -o subformat=fixed,force_size=on l.vhd 1M
qemu-io -f vpc -c 'write -P 1 0 1M' l.vhd >/dev/null
vhd_patch l.vhd size=$((3 << 20))
oracle_map -f vpc l.vhd

scenario size-rules
# Creator apps decide between CHS and current_size; 7.2 and 10.x differ.
for creator in 'win ' qem2 'd2v ' CTXS tap 'vpc ' qemu wa xyzw; do
	qemu-img create -q -f vpc c.vhd 20M
	vhd_patch c.vhd "creator=$creator"
	oracle_json c.vhd
done
qemu-img create -q -f vpc m.vhd 20M
vhd_patch m.vhd chs=65535/16/255 size=$((24 * 1024 * 1024))
dyn_patch m.vhd entries=12
oracle_json m.vhd
# qemu 10.x: an unknown creator means current_size (20971520), not CHS.
qemu-img create -q -f vpc w.vhd 20M
vhd_patch w.vhd creator=wa size=20971520
oracle_json w.vhd
printf '%s\n' '[{ "start": 0, "length": 20971520, "depth": 0, "present": true, "zero": true, "data": false, "compressed": false}]' rc=0 >w.expected
expect_map json w.expected --qemu-compat=10.2 w.vhd
# ... and "qemu" (qemu-img's own) keeps CHS (20994048 for 20M).
qemu-img create -q -f vpc q.vhd 20M
vhd_patch q.vhd size=20971520
printf '%s\n' '[{ "start": 0, "length": 20994048, "depth": 0, "present": true, "zero": true, "data": false, "compressed": false}]' rc=0 >q.expected
expect_map json q.expected --qemu-compat=10.2 q.vhd

scenario patched-differencing
# qemu maps type 4 like a dynamic disk and ignores the parent; we follow
# the (here absent) parent: unallocated ranges are not present in this layer.
qemu-img create -q -f vpc p.vhd 20M
qemu-io -f vpc -c 'write -P 0xaa 4M 4k' p.vhd >/dev/null
vhd_patch p.vhd type=4
cat >p.expected <<'EOF'
[{ "start": 0, "length": 4194304, "depth": 0, "present": false, "zero": true, "data": false},
{ "start": 4194304, "length": 2097152, "depth": 0, "present": true, "zero": false, "data": true, "offset": 2560},
{ "start": 6291456, "length": 14702592, "depth": 0, "present": false, "zero": true, "data": false}]
rc=0
EOF
expect_map json p.expected --qemu-compat=7.2 p.vhd

scenario differencing
# A differencing VHD written from the specification, with a W2ru locator
# naming a parent made by qemu-img; the expected map is computed from both
# images' BATs and the child's sector bitmaps.
cat >"$ORACLE_WORK/mkdiff.py" <<'EOF'
# mkdiff.py PARENT CHILD EXPECTED: write a differencing VHD over PARENT (a
# dynamic or fixed VHD with 2 MiB blocks) and the JSON map it must give.
import struct, sys
parent, child, expected = sys.argv[1:4]
P = open(parent, 'rb').read()
bs = 2 * 1024 * 1024
fixed = P[:8] != b'conectix'
pf = P[-512:] if fixed else P[:512]
size = struct.unpack('>Q', pf[48:56])[0]
nblk = size // bs
if not fixed:
    ph = struct.unpack('>Q', pf[16:24])[0]
    pbat_off = struct.unpack('>Q', P[ph + 16:ph + 24])[0]
    assert struct.unpack('>I', P[ph + 32:ph + 36])[0] == bs
    pbat = [struct.unpack('>I', P[pbat_off + 4 * i:pbat_off + 4 * i + 4])[0] for i in range(nblk)]
nsec = bs // 512
# child blocks: index -> set of present sectors
present = {
    1: set(range(0, 16)),                    # first 8 KiB of block 1
    3: set(range(nsec)),                     # all of block 3
    5: set(range(100, 300)) | {nsec - 1},    # a middle run and the last sector
    6: set(),                                # allocated, nothing present
}
bat_off = 1536
loc_off = 2048
name = 'parent.vhd'.encode('utf-16-le')
first = 2560
hosts = {}
out = bytearray(first)
for i, b in enumerate(sorted(present)):
    hosts[b] = len(out)
    bm = bytearray(512)
    for s in present[b]:
        bm[s // 8] |= 0x80 >> (s % 8)
    out += bm + bytes([0x40 + b]) * bs
footer = bytearray(pf)
footer[60:64] = struct.pack('>I', 4)
footer[16:24] = struct.pack('>Q', 512)
footer[68:84] = bytes(range(16))
footer[64:68] = b'\0\0\0\0'
footer[64:68] = struct.pack('>I', (~sum(footer)) & 0xffffffff)
dh = bytearray(1024)
dh[0:8] = b'cxsparse'
dh[8:16] = b'\xff' * 8
dh[16:24] = struct.pack('>Q', bat_off)
dh[24:28] = struct.pack('>I', 0x10000)
dh[28:32] = struct.pack('>I', nblk)
dh[32:36] = struct.pack('>I', bs)
dh[40:56] = pf[68:84]
dh[64:64 + len('parent.vhd'.encode('utf-16-be'))] = 'parent.vhd'.encode('utf-16-be')
# locator 0: W2ku with a Windows absolute path; locator 1: W2ru relative
absname = 'C:\\images\\parent.vhd'.encode('utf-16-le')
dh[576:600] = struct.pack('>IIIIQ', 0x57326b75, 512, len(absname), 0, loc_off + 256)
dh[600:624] = struct.pack('>IIIIQ', 0x57327275, 512, len('.\\parent.vhd') * 2, 0, loc_off)
dh[36:40] = struct.pack('>I', (~sum(dh)) & 0xffffffff)
out[0:512] = footer
out[512:1536] = dh
bat = bytearray(b'\xff' * 512)
for b, h in hosts.items():
    bat[4 * b:4 * b + 4] = struct.pack('>I', h // 512)
out[bat_off:bat_off + 512] = bat
rel = '.\\parent.vhd'.encode('utf-16-le')
out[loc_off:loc_off + len(rel)] = rel
out[loc_off + 256:loc_off + 256 + len(absname)] = absname
out += footer
open(child, 'wb').write(out)

# expected map, sector by sector runs, merged as qemu-img map merges
ents = []
def add(start, length, depth, present_, zero, data, off):
    if ents:
        e = ents[-1]
        if (e[2], e[3], e[4], e[5]) == (depth, present_, zero, data) and \
           (e[6] is None) == (off is None) and \
           (off is None or e[6] + e[1] == off) and e[0] + e[1] == start:
            e[1] += length
            return
    ents.append([start, length, depth, present_, zero, data, off])
for blk in range(nblk):
    for s in range(nsec):
        g = blk * bs + s * 512
        if blk in present and s in present[blk]:
            add(g, 512, 0, True, False, True, hosts[blk] + 512 + s * 512)
        elif fixed:
            add(g, 512, 1, True, False, True, g)
        elif pbat[blk] != 0xffffffff:
            add(g, 512, 1, True, False, True, pbat[blk] * 512 + 512 + s * 512)
        else:
            add(g, 512, 1, True, True, False, None)
lines = []
for e in ents:
    t = '{ "start": %d, "length": %d, "depth": %d, "present": %s, "zero": %s, "data": %s' % (
        e[0], e[1], e[2], str(e[3]).lower(), str(e[4]).lower(), str(e[5]).lower())
    if e[6] is not None:
        t += ', "offset": %d' % e[6]
    lines.append(t + '}')
open(expected, 'w').write('[' + ',\n'.join(lines) + ']\nrc=0\n')
EOF
qemu-img create -q -f vpc -o force_size=on parent.vhd 16M
qemu-io -f vpc -c 'write -P 1 0 64k' -c 'write -P 2 6M 4k' -c 'write -P 3 12M 2M' \
	parent.vhd >/dev/null
python3 "$ORACLE_WORK/mkdiff.py" parent.vhd child.vhd child.expected
expect_map json child.expected --qemu-compat=7.2 child.vhd
expect_map json child.expected --qemu-compat=7.2 -f vpc child.vhd
check "differencing child names its parent" \
	bash -c "'$IMGAUDIT' map --output=human child.vhd | grep -q 'parent.vhd'"
check "the parent's unique id matches: no parent-mismatch" \
	bash -c "! '$IMGAUDIT' map --output=json child.vhd 2>&1 >/dev/null | grep -q parent-mismatch"
# Another parent under the same name (its unique id differs): still mapped
# through it (qemu ignores VHD parents altogether), with a warning naming both ids.
python3 - <<'PY'
import struct
d = bytearray(open('parent.vhd', 'rb').read())
f = d[:512]
f[68:84] = bytes(range(100, 116))
f[64:68] = b'\0\0\0\0'
f[64:68] = struct.pack('>I', (~sum(f)) & 0xffffffff)
d[:512] = f
d[-512:] = f
open('other.vhd', 'wb').write(d)
PY
cp parent.vhd parent.orig && cp other.vhd parent.vhd
check "another parent: the same map on stdout" \
	bash -c "diff <('$IMGAUDIT' map --output=json --qemu-compat=7.2 child.vhd 2>/dev/null; echo rc=\$?) child.expected"
check "another parent: a parent-mismatch warning names both unique ids" \
	bash -c "'$IMGAUDIT' map --output=json child.vhd 2>&1 >/dev/null | grep 'parent-mismatch' | grep -q 'records uuid .*, the parent has uuid 64656667-6869-6a6b-6c6d-6e6f70717273'"
cp parent.orig parent.vhd
mv parent.vhd parent.moved
expect_fail child.vhd
mv parent.moved parent.vhd

scenario differencing-fixed-parent
# The parent is a fixed VHD, which probing would take for raw: the child
# records the parent's format as vpc.
qemu-img create -q -f vpc -o subformat=fixed,force_size=on parent.vhd 16M
qemu-io -f vpc -c 'write -P 1 0 16M' parent.vhd >/dev/null
python3 "$ORACLE_WORK/mkdiff.py" parent.vhd child.vhd child.expected
expect_map json child.expected --qemu-compat=7.2 child.vhd

scenario malformed
qemu-img create -q -f vpc base.vhd 8M
qemu-io -f vpc -c 'write -P 1 0 64k' base.vhd >/dev/null
cp base.vhd ck.vhd && vhd_patch ck.vhd csum=0x12345678
oracle_map ck.vhd
cp base.vhd bs0.vhd && dyn_patch bs0.vhd bs=0
oracle_map bs0.vhd
cp base.vhd bs3.vhd && dyn_patch bs3.vhd bs=0x300000
oracle_map bs3.vhd
cp base.vhd batfar.vhd && dyn_patch batfar.vhd bat=0x7fffffff000
oracle_map batfar.vhd
cp base.vhd batend.vhd && dyn_patch batend.vhd bat=$(($(stat -c %s base.vhd) - 8))
oracle_map batend.vhd
cp base.vhd ent.vhd && dyn_patch ent.vhd entries=0x7fffffff
oracle_map ent.vhd
cp base.vhd small.vhd && dyn_patch small.vhd entries=1
oracle_map small.vhd
cp base.vhd blk.vhd && dyn_patch blk.vhd bat0=0x00100000
oracle_map blk.vhd
cp base.vhd magic.vhd && dyn_patch magic.vhd magic=cxspars_
oracle_map magic.vhd
cp base.vhd big.vhd && vhd_patch big.vhd creator=qem2 size=$((2041 * 1024 * 1024 * 1024))
oracle_map big.vhd
cp base.vhd t2.vhd && vhd_patch t2.vhd type=2
oracle_map t2.vhd
cp base.vhd t5.vhd && vhd_patch t5.vhd type=5
oracle_map t5.vhd
cp base.vhd t0.vhd && vhd_patch t0.vhd type=0
oracle_map t0.vhd
head -c 3000 base.vhd >trunc.vhd
oracle_map trunc.vhd
head -c 700 base.vhd >trunc2.vhd
oracle_map trunc2.vhd
head -c 100 base.vhd >tiny.vhd
expect_fail -f vpc tiny.vhd
: >empty.vhd
expect_fail -f vpc empty.vhd
qemu-img create -q -f vpc -o subformat=fixed fx.vhd 1M
vhd_patch fx.vhd type=3
oracle_map -f vpc fx.vhd
truncate -s 1000 raw.img
oracle_map -f vpc raw.img

oracle_summary
