#!/bin/bash
# vhdx: qemu-img map has no block status for VHDX (one data entry without
# offset), so qemu is not the oracle for the map itself.  We check our true
# map against the image's contents instead: every range written is data,
# nothing unwritten is data beyond block granularity, and the bytes at every
# mapped host offset are the bytes `qemu-img convert -O raw` reads there
# (zero where the map says zero).  Differencing images, pending logs and
# malformed files are made by patching qemu-made images (vhdxtool.py below,
# written from the published VHDX specification).
. "$(dirname "$0")/../lib.sh"

TOOL=$ORACLE_WORK/vhdxtool.py
cat >"$TOOL" <<'EOF'
import json, struct, sys

MIB = 1 << 20
T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    T.append(c)

def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF

def guid(s):
    a, b, c, d, e = s.split('-')
    return struct.pack('<IHH', int(a, 16), int(b, 16), int(c, 16)) + bytes.fromhex(d + e)

BAT = guid('2DC27766-F623-4200-9D64-115E9BFD4A08')
META = guid('8B7CA206-4790-4B9A-B8FE-575F050F886E')
PARAMS = guid('CAA16737-FA36-4D43-B3B6-33F0AA44E76B')
SIZE = guid('2FA54224-CD1B-4876-B211-5DBED83BF4B8')
LSS = guid('8141BF1D-A96F-4709-BA47-F233A8FAAB5F')
LOC = guid('A8D35F2D-B30B-454D-ABF7-D3D84834AB0C')
LOCTYPE = guid('B04AEFB7-D19E-4A81-B789-25B8E9445913')

def fix_crc(d, off, size):
    d[off + 4:off + 8] = b'\0\0\0\0'
    d[off + 4:off + 8] = struct.pack('<I', crc32c(bytes(d[off:off + size])))

def regions(d):
    r = 192 * 1024
    out = {}
    for i in range(struct.unpack('<I', d[r + 8:r + 12])[0]):
        e = r + 16 + 32 * i
        out[bytes(d[e:e + 16])] = (e, struct.unpack('<Q', d[e + 16:e + 24])[0])
    return out

def meta_items(d):
    m = regions(d)[META][1]
    out = {}
    for i in range(struct.unpack('<H', d[m + 10:m + 12])[0]):
        e = m + 32 + 32 * i
        out[bytes(d[e:e + 16])] = (e, m + struct.unpack('<I', d[e + 16:e + 20])[0])
    return m, out

def geometry(d):
    m, items = meta_items(d)
    bs, flags = struct.unpack('<II', d[items[PARAMS][1]:items[PARAMS][1] + 8])
    size = struct.unpack('<Q', d[items[SIZE][1]:items[SIZE][1] + 8])[0]
    lss = struct.unpack('<I', d[items[LSS][1]:items[LSS][1] + 4])[0]
    return bs, flags, size, lss, (1 << 23) * lss // bs, regions(d)[BAT][1]

def set_bat(d, idx, state, off_mb):
    b = geometry(d)[5]
    d[b + 8 * idx:b + 8 * idx + 8] = struct.pack('<Q', state | off_mb << 20)

def cmd_header(d, field, value):
    # patch both headers' field and fix their checksums (unless field is crc)
    for h in (64 * 1024, 128 * 1024):
        if field == 'log':
            d[h + 48:h + 64] = bytes([0x11] * 16)
        elif field == 'sig':
            d[h:h + 4] = value.encode()
        elif field == 'crc':
            d[h + 4:h + 8] = struct.pack('<I', int(value, 0))
            continue
        elif field == 'version':
            d[h + 66:h + 68] = struct.pack('<H', int(value, 0))
        fix_crc(d, h, 4096)

def cmd_header1(d, field, value):
    # make header 1 invalid (bad crc) only, or give it the higher sequence
    h = 64 * 1024
    if field == 'crc':
        d[h + 4:h + 8] = struct.pack('<I', int(value, 0))
    elif field == 'seq':
        d[h + 8:h + 16] = struct.pack('<Q', int(value, 0))
        fix_crc(d, h, 4096)

def cmd_region(d, field, value):
    for r in (192 * 1024, 256 * 1024):
        if field == 'count':
            d[r + 8:r + 12] = struct.pack('<I', int(value, 0))
        elif field == 'batoff':
            e = regions(d)[BAT][0]
            d[e + 16:e + 24] = struct.pack('<Q', int(value, 0))
        elif field == 'crc1' and r == 192 * 1024:
            d[r + 4:r + 8] = b'\xde\xad\xbe\xef'
            continue
        elif field == 'crc1':
            continue
        fix_crc(d, r, 64 * 1024)

def cmd_meta(d, field, value):
    m, items = meta_items(d)
    if field == 'bs':
        p = items[PARAMS][1]
        d[p:p + 4] = struct.pack('<I', int(value, 0))
    elif field == 'size':
        p = items[SIZE][1]
        d[p:p + 8] = struct.pack('<Q', int(value, 0))
    elif field == 'lss':
        p = items[LSS][1]
        d[p:p + 4] = struct.pack('<I', int(value, 0))
    elif field == 'count':
        d[m + 10:m + 12] = struct.pack('<H', int(value, 0))
    elif field == 'hasparent':
        p = items[PARAMS][1]
        d[p + 4:p + 8] = struct.pack('<I', 2)

def cmd_bat(d, idx, state, off_mb):
    set_bat(d, int(idx), int(state), int(off_mb))

def data_write_guid(path):
    """The data write GUID of the current header of the VHDX at path, as Hyper-V spells it."""
    f = open(path, 'rb').read(192 * 1024)
    hs = [f[o:o + 4096] for o in (64 * 1024, 128 * 1024)]
    h = max(hs, key=lambda h: struct.unpack('<Q', h[8:16])[0])
    d1, d2, d3 = struct.unpack('<IHH', h[32:40])
    return '{%08X-%04X-%04X-%s-%s}' % (d1, d2, d3, h[40:42].hex().upper(), h[42:48].hex().upper())

def cmd_mkdiff(d, parent_name, linkage=None, linkage2=None):
    """Turn a dynamic image into a differencing one whose parent is parent_name:
    parent_linkage names the parent's data write GUID unless given."""
    m, items = meta_items(d)
    bs, flags, size, lss, cr, bat = geometry(d)
    p = items[PARAMS][1]
    d[p + 4:p + 8] = struct.pack('<I', 2)
    # a parent locator item after the last item
    count = struct.unpack('<H', d[m + 10:m + 12])[0]
    end = max(struct.unpack('<I', d[e + 16:e + 20])[0] + struct.unpack('<I', d[e + 20:e + 24])[0]
              for e, _ in items.values())
    off = (end + 7) & ~7
    kv = [('parent_linkage', linkage or data_write_guid(parent_name)),
          ('absolute_win32_path', 'C:\\images\\' + parent_name),
          ('relative_path', '.\\' + parent_name)]
    if linkage2:
        kv.append(('parent_linkage2', linkage2))
    head = LOCTYPE + struct.pack('<HH', 0, len(kv))
    body = b''
    ents = b''
    base = len(head) + 12 * len(kv)
    for k, v in kv:
        kb, vb = k.encode('utf-16-le'), v.encode('utf-16-le')
        ko = base + len(body); body += kb
        vo = base + len(body); body += vb
        ents += struct.pack('<IIHH', ko, vo, len(kb), len(vb))
    loc = head + ents + body
    d[m + off:m + off + len(loc)] = loc
    e = m + 32 + 32 * count
    d[e:e + 32] = LOC + struct.pack('<IIII', off, len(loc), 4 | 2, 0)
    d[m + 10:m + 12] = struct.pack('<H', count + 1)

def cmd_state(d, idx, state):
    """Change the state of BAT entry idx, keeping its offset."""
    b = geometry(d)[5] + 8 * int(idx)
    e = struct.unpack('<Q', d[b:b + 8])[0]
    d[b:b + 8] = struct.pack('<Q', (e & ~7) | int(state))

def cmd_guid(d):
    """Print the data write GUID of the current header, in lower case."""
    hs = [bytes(d[o:o + 4096]) for o in (64 * 1024, 128 * 1024)]
    h = max(hs, key=lambda h: struct.unpack('<Q', h[8:16])[0])
    d1, d2, d3 = struct.unpack('<IHH', h[32:40])
    print('{%08x-%04x-%04x-%s-%s}' % (d1, d2, d3, h[40:42].hex(), h[42:48].hex()))
    return False

def cmd_offsets(d, n):
    """Print the file offsets of the first n payload blocks."""
    bs, flags, size, lss, cr, bat = geometry(d)
    print(' '.join(str(struct.unpack('<Q', d[bat + 8 * (i + i // cr):][:8])[0] >> 20 << 20)
                   for i in range(int(n))))
    return False

def cmd_bitmap(d, chunk, *ranges):
    """Append a sector bitmap block for chunk with the given sector ranges set."""
    bs, flags, size, lss, cr, bat = geometry(d)
    while len(d) % MIB:
        d.append(0)
    at = len(d)
    bm = bytearray(MIB)
    for r in ranges:
        a, b = map(int, r.split('-'))
        for s in range(a, b):
            bm[s // 8] |= 1 << (s % 8)
    d.extend(bm)
    set_bat(d, int(chunk) * (cr + 1) + cr, 6, at // MIB)

def cmd_check(d, mapfile, rawfile, written, bs):
    """Check a JSON map of d against its raw conversion and the written ranges."""
    raw = open(rawfile, 'rb').read()
    ents = json.load(open(mapfile))
    bs = int(bs)
    fail = []
    pos = 0
    datamap = bytearray(len(raw) // 512)
    for e in ents:
        s, n = e['start'], e['length']
        if s != pos:
            fail.append('gap at %d' % pos)
        pos = s + n
        if e['data'] and 'offset' in e:
            if bytes(d[e['offset']:e['offset'] + n]).ljust(n, b'\0') != raw[s:s + n]:
                fail.append('bytes differ at %d+%d' % (s, n))
        if e['zero'] and raw[s:s + n].count(0) != n:
            fail.append('zero range %d+%d holds data' % (s, n))
        if e['data']:
            for k in range(s // 512, (s + n + 511) // 512):
                datamap[k] = 1
        if e['data'] and e['depth'] == 0 and 'offset' not in e:
            fail.append('data without offset at %d' % s)
    if pos != len(raw):
        fail.append('map ends at %d, disk at %d' % (pos, len(raw)))
    wblocks = set()
    for r in written.split():
        a, b = map(int, r.split('+'))
        for k in range(a // 512, (a + b) // 512):
            if not datamap[k]:
                fail.append('written sector %d is not data' % k)
                break
        wblocks.update(range(a // bs, (a + b - 1) // bs + 1))
    for k, v in enumerate(datamap):
        if v and (k * 512) // bs not in wblocks:
            fail.append('unwritten block %d is data' % ((k * 512) // bs))
            break
    if fail:
        print('\n'.join(fail[:5]))
        sys.exit(1)
    return False

cmd, path = sys.argv[1], sys.argv[2]
d = bytearray(open(path, 'rb').read())
if globals()['cmd_' + cmd](d, *sys.argv[3:]) is None:
    open(path, 'wb').write(d)
EOF
vx() { python3 "$TOOL" "$@"; }

# check_map IMAGE BLOCKSIZE "OFF+LEN ..." [RAW]: the map agrees with the
# bytes (RAW: the image's contents, when qemu cannot read the image itself).
check_map() {
	local img=$1 bs=$2 written=$3 raw=${4:-}
	"$IMGAUDIT" map --output=json --qemu-compat=7.2 "$img" >"$img.map" 2>"$img.err" || return 1
	if [ -z "$raw" ]; then
		raw=$img.raw
		qemu-img convert -O raw "$img" "$raw" || return 1
	fi
	python3 "$TOOL" check "$img" "$img.map" "$raw" "$written" "$bs"
}

scenario dynamic
qemu-img create -q -f vhdx a.vhdx 8M
W='0+4096 3145728+1048576 6291456+65536'
qemu-io -f vhdx -c 'write -P 0xaa 0 4k' -c 'write -P 0xbb 3M 1M' -c 'write -z 6M 64k' \
	a.vhdx >/dev/null
check "8 MiB blocks: map matches the contents" check_map a.vhdx $((8 << 20)) "$W"
qemu-img create -q -f vhdx -o block_size=1M b.vhdx 24M
W='0+4096 3145728+1048576 10485760+512 13631488+2097152 25165312+512'
qemu-io -f vhdx -c 'write -P 0xaa 0 4k' -c 'write -P 0xbb 3M 1M' -c 'write -P 1 10M 512' \
	-c 'write -P 2 13M 2M' -c 'write -P 3 24575k 512' b.vhdx >/dev/null
check "1 MiB blocks: map matches the contents" check_map b.vhdx $((1 << 20)) "$W"
# qemu gives one entry without offset; ours differs on purpose.
check "qemu-img map stays one data entry" \
	bash -c "qemu-img map --output=json b.vhdx | grep -c start | grep -qx 1"
qemu-img create -q -f vhdx -o block_size=1M,block_state_zero=off z.vhdx 4M
qemu-io -f vhdx -c 'write -P 5 1M 8k' z.vhdx >/dev/null
check "block_state_zero=off" check_map z.vhdx $((1 << 20)) '1048576+8192'
qemu-img create -q -f vhdx -o block_size=1M l.vhdx 4M
# qemu cannot open 4 KiB sector images: write, convert, then patch.
qemu-io -f vhdx -c 'write -P 5 2M 8k' l.vhdx >/dev/null
qemu-img convert -O raw l.vhdx l.raw
vx meta l.vhdx lss 4096
check "4 KiB logical sectors" check_map l.vhdx $((1 << 20)) '2097152+8192' l.raw
qemu-img create -q -f vhdx e.vhdx 1G
check "empty 1 GiB" check_map e.vhdx $((32 << 20)) ''
printf '%s\n' '[{ "start": 0, "length": 1073741824, "depth": 0, "present": true, "zero": true, "data": false}]' rc=0 >e.expected
expect_map json e.expected --qemu-compat=7.2 e.vhdx
expect_map json e.expected --qemu-compat=7.2 -f vhdx e.vhdx

scenario fixed
# qemu marks unwritten blocks of a fixed image ZERO (block_state_zero=on).
qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M f.vhdx 8M
qemu-io -f vhdx -c 'write -P 0xaa 1M 4k' -c 'write -P 0xbb 5M 64k' f.vhdx >/dev/null
check "fixed: map matches the contents" check_map f.vhdx $((1 << 20)) '1048576+4096 5242880+65536'
# With block_state_zero=off every block is fully present: all data.
qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M,block_state_zero=off o.vhdx 8M
qemu-io -f vhdx -c 'write -P 0xaa 1M 4k' o.vhdx >/dev/null
check "fixed, all present: map matches the contents" check_map o.vhdx $((1 << 20)) '0+8388608'
check "fixed, all present: the write is data and not zero" \
	bash -c "grep -q '\"start\": 1048576, \"length\": 4096, .*\"zero\": false, \"data\": true' o.vhdx.map"
# A size that is not a multiple of the block size: qemu allocates only the
# disk's tail in the last block, so that block ends before block_size does.
qemu-img create -q -f vhdx -o subformat=fixed,block_size=8M,block_state_zero=off t.vhdx 31462912
qemu-io -f vhdx -c 'write -P 0xcc 30000k 64k' t.vhdx >/dev/null
check "fixed, short last block: map matches the contents" check_map t.vhdx $((8 << 20)) '0+31462912'

scenario differencing
qemu-img create -q -f vhdx -o block_size=1M parent.vhdx 8M
qemu-io -f vhdx -c 'write -P 1 0 1M' -c 'write -P 2 2M 1M' -c 'write -P 3 5M 1M' \
	-c 'write -P 4 7M 1M' parent.vhdx >/dev/null
qemu-img create -q -f vhdx -o block_size=1M child.vhdx 8M
qemu-io -f vhdx -c 'write -P 9 1M 1M' -c 'write -P 8 2M 1M' child.vhdx >/dev/null
vx mkdiff child.vhdx parent.vhdx
# block 2: partially present (sectors 8-16 and 100-200 here); block 5 zero.
vx bitmap child.vhdx 0 4104-4112 4196-4296
vx state child.vhdx 2 7
for b in 0 3 4 6 7; do vx state child.vhdx $b 0; done
vx bat child.vhdx 5 2 0
P=$(vx offsets parent.vhdx 8)
C=$(vx offsets child.vhdx 8)
read -r p0 p1 p2 p3 p4 p5 p6 p7 <<<"$P"
read -r c0 c1 c2 c3 c4 c5 c6 c7 <<<"$C"
M=1048576
cat >child.expected <<EOF
[{ "start": 0, "length": $M, "depth": 1, "present": true, "zero": false, "data": true, "offset": $p0},
{ "start": $M, "length": $M, "depth": 0, "present": true, "zero": false, "data": true, "offset": $c1},
{ "start": $((2 * M)), "length": 4096, "depth": 1, "present": true, "zero": false, "data": true, "offset": $p2},
{ "start": $((2 * M + 4096)), "length": 4096, "depth": 0, "present": true, "zero": false, "data": true, "offset": $((c2 + 4096))},
{ "start": $((2 * M + 8192)), "length": 43008, "depth": 1, "present": true, "zero": false, "data": true, "offset": $((p2 + 8192))},
{ "start": $((2 * M + 51200)), "length": 51200, "depth": 0, "present": true, "zero": false, "data": true, "offset": $((c2 + 51200))},
{ "start": $((2 * M + 102400)), "length": $((M - 102400)), "depth": 1, "present": true, "zero": false, "data": true, "offset": $((p2 + 102400))},
{ "start": $((3 * M)), "length": $((2 * M)), "depth": 1, "present": true, "zero": true, "data": false},
{ "start": $((5 * M)), "length": $M, "depth": 0, "present": true, "zero": true, "data": false},
{ "start": $((6 * M)), "length": $M, "depth": 1, "present": true, "zero": true, "data": false},
{ "start": $((7 * M)), "length": $M, "depth": 1, "present": true, "zero": false, "data": true, "offset": $p7}]
rc=0
EOF
expect_map json child.expected --qemu-compat=7.2 child.vhdx
check "differencing: human output names the parent" \
	bash -c "'$IMGAUDIT' map child.vhdx | grep -q 'parent.vhdx\$'"
check "differencing: parent_linkage names the parent's data write GUID: no warning" \
	bash -c "! '$IMGAUDIT' map --output=json child.vhdx 2>&1 >/dev/null | grep -q parent-mismatch"
# parent_linkage of another disk: still mapped through the parent, with a
# warning naming both GUIDs; parent_linkage2 naming the parent is accepted.
G=$(vx guid parent.vhdx)
qemu-img create -q -f vhdx -o block_size=1M other.vhdx 8M
qemu-img create -q -f vhdx -o block_size=1M two.vhdx 8M
vx mkdiff other.vhdx parent.vhdx '{11111111-2222-3333-4444-555555555555}'
vx mkdiff two.vhdx parent.vhdx '{11111111-2222-3333-4444-555555555555}' "$G"
check "another parent_linkage: mapped, with a parent-mismatch warning naming both GUIDs" \
	bash -c "'$IMGAUDIT' map --output=json other.vhdx 2>&1 >/dev/null | grep parent-mismatch | grep -q 'records guid {11111111-2222-3333-4444-555555555555}, the parent has guid $G'"
check "parent_linkage2 naming the parent: no warning" \
	bash -c "! '$IMGAUDIT' map --output=json two.vhdx 2>&1 >/dev/null | grep -q parent-mismatch"
cp child.vhdx orphan.vhdx
mv parent.vhdx parent.moved
expect_fail orphan.vhdx
mv parent.moved parent.vhdx
cp child.vhdx bad2.vhdx && vx bat bad2.vhdx 4096 0 0
expect_fail bad2.vhdx
cp child.vhdx noloc.vhdx && vx meta noloc.vhdx count 5
expect_fail noloc.vhdx

scenario pending-log
qemu-img create -q -f vhdx -o block_size=1M g.vhdx 4M
qemu-io -f vhdx -c 'write -P 5 1M 8k' g.vhdx >/dev/null
qemu-img convert -O raw g.vhdx g.raw
vx header g.vhdx log 1
check "pending log: qemu refuses it" bash -c "! qemu-img map g.vhdx >/dev/null 2>&1"
check "pending log without an active sequence: mapped as it lies" check_map g.vhdx $((1 << 20)) '1048576+8192' g.raw
check "pending log: a warning names the finding" grep -q vhdx-pending-log g.vhdx.err
# A name holding a newline and an escape is escaped in the warning: one line.
odd=$(printf 'g\n\033x.vhdx')
cp g.vhdx "$odd"
escaped_warning() {
	local err
	err=$("$IMGAUDIT" map --output=json "$odd" 2>&1 >/dev/null)
	[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && grep -qF "'g\n\x1bx.vhdx'" <<<"$err"
}
check "warnings escape the names they print" escaped_warning

scenario headers
qemu-img create -q -f vhdx -o block_size=1M h.vhdx 4M
qemu-io -f vhdx -c 'write -P 5 1M 8k' h.vhdx >/dev/null
qemu-img convert -O raw h.vhdx h.raw
cp h.vhdx h1.vhdx && vx header1 h1.vhdx crc 0
check "header 1 damaged: header 2 used" check_map h1.vhdx $((1 << 20)) '1048576+8192'
cp h.vhdx h2.vhdx && vx header1 h2.vhdx seq 0xffffffffff
check "header 1 newer" check_map h2.vhdx $((1 << 20)) '1048576+8192'
# qemu reads region table 1 only; we fall back to table 2.
cp h.vhdx r1.vhdx && vx region r1.vhdx crc1 0
check "region table 1 damaged: table 2 used" check_map r1.vhdx $((1 << 20)) '1048576+8192' h.raw

scenario malformed
qemu-img create -q -f vhdx -o block_size=1M base.vhdx 4M
qemu-io -f vhdx -c 'write -P 5 1M 8k' base.vhdx >/dev/null
cp base.vhdx m1.vhdx && vx header m1.vhdx crc 0
expect_fail m1.vhdx
cp base.vhdx m2.vhdx && vx header m2.vhdx sig xead
expect_fail m2.vhdx
cp base.vhdx m3.vhdx && vx header m3.vhdx version 2
expect_fail m3.vhdx
cp base.vhdx m4.vhdx && vx region m4.vhdx count 5000
expect_fail m4.vhdx
cp base.vhdx m5.vhdx && vx region m5.vhdx batoff $((1 << 40))
expect_fail m5.vhdx
cp base.vhdx m6.vhdx && vx meta m6.vhdx bs 0
expect_fail m6.vhdx
cp base.vhdx m7.vhdx && vx meta m7.vhdx bs $((3 << 20))
expect_fail m7.vhdx
cp base.vhdx m8.vhdx && vx meta m8.vhdx size $((1 << 60))
expect_fail m8.vhdx
cp base.vhdx m9.vhdx && vx meta m9.vhdx count 60000
expect_fail m9.vhdx
cp base.vhdx m10.vhdx && vx meta m10.vhdx lss 1000
expect_fail m10.vhdx
cp base.vhdx m11.vhdx && vx meta m11.vhdx size $((1 << 40))
expect_fail m11.vhdx
cp base.vhdx m12.vhdx && vx bat m12.vhdx 1 6 100000
expect_fail m12.vhdx
cp base.vhdx m13.vhdx && vx bat m13.vhdx 1 4 4
expect_fail m13.vhdx
cp base.vhdx m14.vhdx && vx bat m14.vhdx 1 7 4
expect_fail m14.vhdx
cp base.vhdx m15.vhdx && vx meta m15.vhdx hasparent 1
expect_fail m15.vhdx
for n in 100 70000 200000 1048576 3000000; do
	head -c $n base.vhdx >t$n.vhdx
	expect_fail t$n.vhdx
done
printf 'vhdxfile' >sig.vhdx
expect_fail sig.vhdx

oracle_summary
