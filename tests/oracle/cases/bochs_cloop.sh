#!/bin/bash
# bochs and cloop: qemu-img cannot create them, but it reads them, so the
# images are built byte by byte here (valid, odd and malformed headers) and
# both tools must print the same maps and exit statuses, probed and with -f.
. "$(dirname "$0")/../lib.sh"

# mk_bochs FILE [KEY=VALUE...]: a growing redolog; keys: version, catalog,
# bitmap, extent, disk, subtype, header, len (file length).
mk_bochs() {
	python3 - "$@" <<'EOF'
import struct, sys
path = sys.argv[1]
o = dict(version=0x20000, header=512, catalog=4, bitmap=512, extent=4096, disk=16384,
         subtype='Growing', len=None)
for kv in sys.argv[2:]:
    k, v = kv.split('=', 1)
    o[k] = v if k == 'subtype' else int(v, 0)
h = bytearray(512)
h[0:23] = b'Bochs Virtual HD Image\0'
h[32:40] = b'Redolog\0'
s = o['subtype'].encode() + b'\0'
h[48:48 + len(s)] = s
struct.pack_into('<5I', h, 64, o['version'], o['header'], o['catalog'], o['bitmap'], o['extent'])
struct.pack_into('<Q', h, 84 if o['version'] == 0x10000 else 88, o['disk'])
cat = b'\xff\xff\xff\xff' * min(o['catalog'], 4096)
data = bytes(h) + cat
if o['len'] is not None:
    data = (data + bytes(max(0, o['len'] - len(data))))[:o['len']]
open(path, 'wb').write(data)
EOF
}

# mk_cloop FILE BLOCK_SIZE N [TABLE_ENTRIES [KEY=VALUE...]]: offsets 1024 + 100 i for
# the first TABLE_ENTRIES entries (default N + 1); keys: dec=I (entry I is 10),
# big=I (entry I jumps by 128 MiB + 1), len (file length).
mk_cloop() {
	python3 - "$@" <<'EOF'
import struct, sys
path, bs, n = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3], 0)
k = int(sys.argv[4], 0) if len(sys.argv) > 4 else n + 1
o = dict(dec=-1, big=-1, len=None)
for kv in sys.argv[5:]:
    a, v = kv.split('=', 1)
    o[a] = int(v, 0)
magic = b'#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n'
h = bytearray(128)
h[0:len(magic)] = magic
data = bytes(h) + struct.pack('>II', bs, n)
off = 1024
for i in range(k):
    if i == o['big']:
        off += (128 << 20) + 1
    data += struct.pack('>Q', 10 if i == o['dec'] else off)
    off += 100
if o['len'] is not None:
    data = (data + bytes(max(0, o['len'] - len(data))))[:o['len']]
open(path, 'wb').write(data)
EOF
}

both() {
	local img=$1 fmt=$2; shift 2
	oracle_map "$@" "$img"
	oracle_map -f "$fmt" "$@" "$img"
}

scenario bochs
mk_bochs v2.bochs
both v2.bochs bochs
both v2.bochs bochs -s 1000
both v2.bochs bochs -s 4096 -l 100
mk_bochs v1.bochs version=0x10000
both v1.bochs bochs
mk_bochs odd.bochs disk=16283 # not a whole number of sectors
both odd.bochs bochs
mk_bochs empty.bochs disk=0
both empty.bochs bochs
mk_bochs short.bochs len=68 extent=0 # cut inside the header: zero-filled
both short.bochs bochs
mk_bochs short2.bochs len=100
both short2.bochs bochs
mk_bochs nocat.bochs len=512 # the catalog missing
both nocat.bochs bochs
mk_bochs big.bochs catalog=0x100000 extent=0x800000 disk=$((0x100000 * 0x800000))
both big.bochs bochs
for kv in version=0x30000 subtype=Undoable subtype=Volatile catalog=0x100001 catalog=0xffffffff \
	extent=0 extent=256 extent=4095 extent=0x1000000 disk=17000 disk=0xffffffffffffffff; do
	mk_bochs bad.bochs "$kv"
	both bad.bochs bochs
done
oracle_map -f bochs v2.bochs -s 0x1k
# A raw file given as bochs, and a bochs image given as another format.
head -c 65536 /dev/zero >zero.raw
oracle_map -f bochs zero.raw
oracle_map -f cloop v2.bochs
# A qcow2 overlay on a bochs base: the base is probed as bochs.
qemu-img create -q -f qcow2 -b v2.bochs -F bochs top.qcow2
qemu-io -f qcow2 -c 'write -P 1 4k 4k' top.qcow2 >/dev/null
oracle_map top.qcow2

scenario cloop
mk_cloop c.cloop 65536 16
both c.cloop cloop
both c.cloop cloop -s 70000 -l 3
mk_cloop small.cloop 512 3
both small.cloop cloop
mk_cloop zero.cloop 4096 0
both zero.cloop cloop
mk_cloop past.cloop 65536 100000 1 # the table past the end: zeroes after a non-zero
both past.cloop cloop
mk_cloop allzero.cloop 65536 1000 0 # every offset past the end: all zero
both allzero.cloop cloop
mk_cloop wrap.cloop $((64 << 20)) $((1 << 24)) 0 # 32-bit size product wraps to 0
both wrap.cloop cloop
mk_cloop wrap2.cloop $((64 << 20)) $(((1 << 24) - 1)) 0
both wrap2.cloop cloop -l 1M
mk_cloop maxn.cloop 512 $(((1 << 26) - 1)) 0
both maxn.cloop cloop
mk_cloop big.cloop 65536 4 5 big=2 # a block over 128 MiB compressed
both big.cloop cloop
mk_cloop dec.cloop 65536 8 9 dec=5
both dec.cloop cloop
for args in "0 4" "511 4" "1000 4" "$(((64 << 20) + 512)) 4" "0xffffffff 4" \
	"65536 $((1 << 26)) 0" "65536 0xffffffff 0"; do
	# shellcheck disable=SC2086
	mk_cloop bad.cloop $args
	both bad.cloop cloop
done
mk_cloop cut.cloop 65536 16 17 len=84 # only the magic: the block size reads as zero
both cut.cloop cloop
mk_cloop cut2.cloop 65536 16 17 len=$((136 + 8 * 3 + 4))
both cut2.cloop cloop
# The modprobe line altered: not cloop for qemu (raw), nor for us.
mk_cloop alt.cloop 65536 16
printf 'X' | dd of=alt.cloop bs=1 seek=40 conv=notrunc status=none
oracle_map alt.cloop
oracle_map -f raw c.cloop

oracle_summary
