#!/usr/bin/env python3
"""Write VirtualBox VDI images (normal, static or differencing) from the
published VDI 1.1 header layout, for tests: no tool here makes differencing
VDIs (qemu-img refuses them).  Also checks a map of a chain against the guest
content it should hold.

usage:
  mkvdi.py make OUT --size BYTES [--type normal|static|diff|N] [--uuid U]
           [--modify U] [--parent U] [--parent-modify U] [--block-size N]
           [--sector-size N] [--blocks N] [--write BLOCK=TAG]... [--discard BLOCK]...
  mkvdi.py check --size BYTES --expect BLOCK=TAG|zero... < HUMAN_MAP
  mkvdi.py uuid FILE            print uuidCreate, uuidModify, uuidLinkage,
                                uuidParentModify (one a line, "" when null)

Layout written (little-endian): a 64-byte banner, then at 64 the signature
0xbeda107f, version 1.1, header size 400, image type (1 normal, 2 static,
4 differencing), flags, a 256-byte comment, the block map offset (512) and
the data offset (the map's end rounded up to 512), the legacy geometry
(sector size at 360), the disk size (368), the block size (376), extra block
bytes (380), the block count (384), the allocated count (388), then the
UUIDs: uuidCreate (392), uuidModify (408), uuidLinkage (424, the parent's
uuidCreate), uuidParentModify (440, the parent's uuidModify), and the LCHS
geometry.  The block map holds one 32-bit index per block: 0xffffffff never
written, 0xfffffffe discarded (reads as zeroes), else the block's place in
the data area.  A static image has every block allocated.

Guest content: a block written with TAG holds, in each 512-byte sector s
(the guest sector number), the text "TAG@s;" repeated, cut to 512 bytes.

check reads `imgaudit map` human output (Offset Length Mapped-to File) on
stdin, reads every sector through it from the files it names, and compares
each guest sector with the expectation (blocks not listed: zero); a sector
the map leaves out reads as zeroes.  Exit 1 with the first difference.
"""
import struct
import sys
import uuid as uuidlib

S = 512
MB = 1 << 20


def pattern(tag, first_sector, n):
    out = bytearray()
    for s in range(first_sector, first_sector + n):
        unit = ('%s@%d;' % (tag, s)).encode()
        out += (unit * (S // len(unit) + 1))[:S]
    return bytes(out)


def uuid_bytes(text):
    if not text:
        return b'\0' * 16
    return uuidlib.UUID(text).bytes_le


def uuid_text(b):
    if b == b'\0' * 16:
        return ''
    return str(uuidlib.UUID(bytes_le=b))


def make(args):
    out = args.pop(0)
    opt = {'type': 'normal', 'uuid': str(uuidlib.uuid4()), 'modify': str(uuidlib.uuid4()),
           'parent': '', 'parent-modify': '', 'block-size': str(MB), 'sector-size': '512',
           'blocks': None, 'size': None}
    writes, discards = {}, set()
    while args:
        a = args.pop(0)
        if not a.startswith('--'):
            sys.exit('mkvdi: unexpected argument %r' % a)
        k = a[2:]
        v = args.pop(0)
        if k == 'write':
            b, t = v.split('=', 1)
            writes[int(b)] = t
        elif k == 'discard':
            discards.add(int(v))
        elif k in opt:
            opt[k] = v
        else:
            sys.exit('mkvdi: unknown option %r' % a)
    types = {'normal': 1, 'static': 2, 'undo': 3, 'diff': 4}
    itype = types.get(opt['type'])
    if itype is None:
        itype = int(opt['type'])
    size = int(opt['size'])
    bs = int(opt['block-size'])
    nblocks = int(opt['blocks']) if opt['blocks'] is not None else (size + bs - 1) // bs
    bmap_off = 512
    data_off = (bmap_off + 4 * nblocks + S - 1) // S * S
    bmap = [0xffffffff] * nblocks
    data = bytearray()
    order = sorted(writes)
    if itype == 2:
        order = list(range(nblocks))
    for b in order:
        bmap[b] = len(data) // bs
        tag = writes.get(b)
        if tag is None:
            data += b'\0' * bs
        else:
            data += pattern(tag, b * bs // S, bs // S)
    for b in discards:
        bmap[b] = 0xfffffffe
    h = bytearray(512)
    banner = b'<<< Oracle VM VirtualBox Disk Image >>>\n'
    h[0:len(banner)] = banner
    struct.pack_into('<IIII', h, 64, 0xbeda107f, 0x00010001, 400, itype)
    struct.pack_into('<I', h, 80, 0)
    h[84:84 + 17] = b'imgaudit mkvdi.py'
    struct.pack_into('<II', h, 340, bmap_off, data_off)
    struct.pack_into('<IIII', h, 348, 0, 0, 0, int(opt['sector-size']))
    struct.pack_into('<QIIII', h, 368, size, bs, 0, nblocks, len(order))
    h[392:408] = uuid_bytes(opt['uuid'])
    h[408:424] = uuid_bytes(opt['modify'])
    h[424:440] = uuid_bytes(opt['parent'])
    h[440:456] = uuid_bytes(opt['parent-modify'])
    with open(out, 'wb') as f:
        f.write(h)
        f.write(struct.pack('<%dI' % nblocks, *bmap))
        f.write(b'\0' * (data_off - bmap_off - 4 * nblocks))
        f.write(data)
    print(opt['uuid'])


def check(args):
    size, expect, bs = None, {}, MB
    while args:
        a = args.pop(0)
        v = args.pop(0)
        if a == '--size':
            size = int(v)
        elif a == '--block-size':
            bs = int(v)
        elif a == '--expect':
            b, t = v.split('=', 1)
            expect[int(b)] = t
    got = bytearray(size)
    lines = sys.stdin.read().splitlines()
    files = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        parts = line.split(None, 3)
        off, ln, host, name = int(parts[0], 16), int(parts[1], 16), int(parts[2], 16), parts[3]
        f = files.get(name)
        if f is None:
            f = files[name] = open(name, 'rb')
        f.seek(host)
        buf = f.read(ln)
        got[off:off + len(buf)] = buf
    for s in range(size // S):
        b = s * S // bs
        tag = expect.get(b, 'zero')
        want = b'\0' * S if tag == 'zero' else pattern(tag, s, 1)
        if bytes(got[s * S:(s + 1) * S]) != want:
            print('sector %d (block %d): expected %s, read %r' %
                  (s, b, tag, bytes(got[s * S:s * S + 24])), file=sys.stderr)
            sys.exit(1)
    print('ok: %d sectors as expected' % (size // S))


def show(args):
    with open(args[0], 'rb') as f:
        h = f.read(512)
    for o in (392, 408, 424, 440):
        print(uuid_text(h[o:o + 16]))


if __name__ == '__main__':
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, rest = sys.argv[1], sys.argv[2:]
    {'make': make, 'check': check, 'uuid': show}.get(cmd, lambda a: sys.exit(__doc__))(rest)
