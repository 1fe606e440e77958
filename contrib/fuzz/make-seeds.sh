#!/bin/bash
# Regenerate the seed corpora: one small image per format and feature, made
# by qemu-img.  The first byte of an image seed names the driver (its index in
# the table, or 255 for "probe"), as fuzz_image.c reads it.
#   contrib/fuzz/make-seeds.sh IMGAUDIT
set -euo pipefail
bin=$(readlink -f "$1")
here=$(cd "$(dirname "$0")" && pwd)
out=$here/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out/image" "$out/probe"
rm -f "$out"/image/* "$out"/probe/*
cd "$tmp"
drivers=$("$bin" --help | sed -n 's/^formats: //p')
index() { local i=0; for d in $drivers; do [ "$d" = "$1" ] && echo $i && return; i=$((i + 1)); done; }
seed() { # seed NAME FORMAT FILE
	local idx; idx=$(index "$2")
	{ printf "\\x$(printf %02x "$idx")"; head -c 262144 "$3"; } >"$out/image/$1"
	{ printf '\xff'; head -c 65536 "$3"; } >"$out/image/$1-probed"
	head -c 8192 "$3" >"$out/probe/$1"
}
q() { qemu-img create -q "$@"; }
w() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }
q -f qcow2 -o cluster_size=512 a.qcow2 64k
w a.qcow2 -c 'write -P 1 0 4k' -c 'write -c 8k 512' -c 'write -z 16k 1k'
seed qcow2 qcow2 a.qcow2
q -f qcow2 -o cluster_size=16k,extended_l2=on,compat=1.1 x.qcow2 64k
w x.qcow2 -c 'write -P 1 0 512' -c 'write -z 8k 1k'
seed qcow2-extl2 qcow2 x.qcow2
q -f qcow2 -o cluster_size=512,compat=0.10 -b a.qcow2 -F qcow2 o.qcow2
seed qcow2-v2-backing qcow2 o.qcow2
q -f vmdk v.vmdk 1M
w v.vmdk -c 'write -P 1 0 4k'
seed vmdk vmdk v.vmdk
q -f vmdk -o subformat=monolithicFlat f.vmdk 64k
seed vmdk-desc vmdk f.vmdk
q -f vpc d.vhd 4M
w d.vhd -c 'write -P 1 0 4k'
seed vpc vpc d.vhd
q -f vhdx h.vhdx 4M
w h.vhdx -c 'write -P 1 0 4k'
seed vhdx vhdx h.vhdx
q -f vdi i.vdi 2M
w i.vdi -c 'write -P 1 0 4k'
seed vdi vdi i.vdi
# a differencing vdi (qemu-img cannot make one): written from the header layout
python3 "$here/../../tests/tools/mkvdi.py" make dv.vdi --type diff --size 2097152 \
	--parent 11111111-2222-4333-8444-000000000001 --write 1=c --discard 0 >/dev/null
seed vdi-diff vdi dv.vdi
q -f qed e.qed 1M
w e.qed -c 'write -P 1 0 4k'
seed qed qed e.qed
q -f qcow c.qcow 64k
w c.qcow -c 'write -P 1 0 4k'
seed qcow qcow c.qcow
q -f parallels p.img 2M
w p.img -c 'write -P 1 0 4k'
seed parallels parallels p.img
q -f luks --object secret,id=s0,data=x -o key-secret=s0,iter-time=10 l.luks 64k 2>/dev/null &&
	seed luks luks l.luks
# dmg: qemu-img cannot create it; tests/tools/mkdmg.py writes every chunk type
python3 "$here/../../tests/tools/mkdmg.py" m.dmg
seed dmg dmg m.dmg
python3 "$here/../../tests/tools/mkdmg.py" mr.dmg --rsrc
seed dmg-rsrc dmg mr.dmg
# bochs and cloop: qemu-img cannot create them; a growing redolog with one
# allocated extent, and a cloop of two zlib blocks.
python3 - <<'EOF'
import struct, zlib
h = bytearray(512)
h[0:23] = b'Bochs Virtual HD Image\0'
h[32:40] = b'Redolog\0'
h[48:56] = b'Growing\0'
struct.pack_into('<5IIQ', h, 64, 0x20000, 512, 4, 512, 4096, 0, 16384)
cat = struct.pack('<4I', 0, 0xffffffff, 0xffffffff, 0xffffffff)
open('b.bochs', 'wb').write(bytes(h) + cat + b'\xff' * 512 + b'\x01' * 4096)
magic = b'#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n'
blocks = [zlib.compress(bytes([i + 1]) * 4096) for i in range(2)]
offs, o = [], 136 + 8 * 3
for b in blocks:
    offs.append(o)
    o += len(b)
offs.append(o)
open('c.cloop', 'wb').write(magic + bytes(128 - len(magic)) + struct.pack('>II', 4096, 2) +
                            b''.join(struct.pack('>Q', x) for x in offs) + b''.join(blocks))
EOF
seed bochs bochs b.bochs
seed cloop cloop c.cloop
printf 'hello, raw world\n' >r.raw
seed raw raw r.raw
ls "$out/image" | wc -l
