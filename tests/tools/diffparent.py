#!/usr/bin/env python3
"""Parents for differencing VHD and VHDX children, and a sector-exact check.

Written from the published VHD and VHDX specifications, independent of the
C code it checks.

  diffparent.py vhd CHILD PARENT
      Write PARENT: a fixed VHD with CHILD's size and geometry, whose footer
      Unique Id is the Parent Unique ID CHILD records, every sector tagged.
  diffparent.py vhdx CHILD PARENT
      Write PARENT: a dynamic VHDX (qemu-img convert of a sparse raw file)
      of CHILD's virtual size whose data write GUID is CHILD's
      parent_linkage; the blocks CHILD holds partially and the first block
      are tagged, the rest is not allocated (reads as zero).
  diffparent.py check CHILD PARENT MAPJSON
      The map imgaudit printed (MAPJSON) must be the one computed here from
      CHILD's BAT and sector bitmaps and PARENT's allocation, sector by
      sector; every parent range it maps must hold the tags of the guest
      sectors it stands for.

A tagged sector n holds the 16 bytes "IAGTSECT" + n (64-bit little-endian),
32 times.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

SEC = 512
MIB = 1 << 20
MAGIC = b'IAGTSECT'


def tag(first, count):
    return b''.join((MAGIC + struct.pack('<Q', first + i)) * 32 for i in range(count))


def vhd_checksum(b):
    return (~sum(b)) & 0xffffffff


# ---- VHD ----

def vhd_child(path):
    d = open(path, 'rb').read()
    f = d[:512]
    assert f[:8] == b'conectix' and struct.unpack('>I', f[60:64])[0] == 4, 'not a differencing VHD'
    dh_off = struct.unpack('>Q', f[16:24])[0]
    dh = d[dh_off:dh_off + 1024]
    return d, f, dh


def make_vhd_parent(child, parent):
    _, f, dh = vhd_child(child)
    size = struct.unpack('>Q', f[48:56])[0]
    foot = bytearray(f)
    foot[16:24] = b'\xff' * 8                  # data offset: none (fixed)
    foot[60:64] = struct.pack('>I', 2)         # fixed
    foot[68:84] = dh[40:56]                    # the unique id the child names
    foot[64:68] = b'\0\0\0\0'
    foot[64:68] = struct.pack('>I', vhd_checksum(foot))
    with open(parent, 'wb') as out:
        for s in range(0, size // SEC, 2048):
            out.write(tag(s, min(2048, size // SEC - s)))
        out.write(foot)


def vhd_expected(child, parent_path):
    """Per-sector (depth, host offset) runs of a differencing VHD over a fixed VHD."""
    d, f, dh = vhd_child(child)
    size = struct.unpack('>Q', f[48:56])[0]
    bat_off = struct.unpack('>Q', dh[16:24])[0]
    bs = struct.unpack('>I', dh[32:36])[0]
    bitmap = (bs // SEC // 8 + 511) // 512 * 512
    runs = []
    for blk in range((size + bs - 1) // bs):
        e = struct.unpack('>I', d[bat_off + 4 * blk:bat_off + 4 * blk + 4])[0]
        start = blk * bs
        n = min(bs, size - start) // SEC
        if e == 0xffffffff:
            runs.append((start, n * SEC, 1, True, False, True, start))
            continue
        bm = d[e * 512:e * 512 + bitmap]
        for s in range(n):
            g = start + s * SEC
            if bm[s // 8] & (0x80 >> (s % 8)):
                runs.append((g, SEC, 0, True, False, True, e * 512 + bitmap + s * SEC))
            else:
                runs.append((g, SEC, 1, True, False, True, g))
    return size, runs


# ---- VHDX ----

def crc32c(b):
    c = 0xffffffff
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ 0x82f63b78 if c & 1 else c >> 1
    return c ^ 0xffffffff


BAT_GUID = bytes.fromhex('6677c22d23f600429d64115e9bfd4a08')
META_GUID = bytes.fromhex('06a27c8b90479a4bb8fe575f050f886e')
ITEMS = {
    bytes.fromhex('3767a1ca36fa434db3b633f0aa44e76b'): 'params',
    bytes.fromhex('2442a52f1bcd7648b2115dbed83bf4b8'): 'size',
    bytes.fromhex('1dbf41816fa90947ba47f233a8faab5f'): 'lss',
    bytes.fromhex('2d5fd3a80bb34d45abf7d3d84834ab0c'): 'locator',
}


class Vhdx:
    def __init__(self, path):
        self.f = open(path, 'rb')
        hs = [self.read(o, 4096) for o in (64 * 1024, 128 * 1024)]
        self.hdr = max(hs, key=lambda h: struct.unpack('<Q', h[8:16])[0])
        rt = self.read(192 * 1024, 64 * 1024)
        for i in range(struct.unpack('<I', rt[8:12])[0]):
            e = rt[16 + 32 * i:48 + 32 * i]
            off, ln = struct.unpack('<QI', e[16:28])
            if e[:16] == BAT_GUID:
                self.bat = off
            elif e[:16] == META_GUID:
                meta = off
        tbl = self.read(meta, 64 * 1024)
        items = {}
        for i in range(struct.unpack('<H', tbl[10:12])[0]):
            e = tbl[32 + 32 * i:64 + 32 * i]
            if e[:16] in ITEMS:
                off, ln = struct.unpack('<II', e[16:24])
                items[ITEMS[e[:16]]] = self.read(meta + off, ln)
        self.bs, flags = struct.unpack('<II', items['params'][:8])
        self.diff = bool(flags & 2)
        self.size = struct.unpack('<Q', items['size'][:8])[0]
        self.lss = struct.unpack('<I', items['lss'][:4])[0]
        self.cr = (1 << 23) * self.lss // self.bs
        self.locator = {}
        if 'locator' in items:
            loc = items['locator']
            for i in range(struct.unpack('<H', loc[18:20])[0]):
                ko, vo, kl, vl = struct.unpack('<IIHH', loc[20 + 12 * i:32 + 12 * i])
                self.locator[loc[ko:ko + kl].decode('utf-16-le')] = loc[vo:vo + vl].decode('utf-16-le')

    def read(self, off, n):
        self.f.seek(off)
        return self.f.read(n)

    def entry(self, idx):
        e = struct.unpack('<Q', self.read(self.bat + 8 * idx, 8))[0]
        return e & 7, (e >> 20) << 20

    def block(self, b):
        return self.entry(b + b // self.cr)

    def bitmap(self, b):
        state, off = self.entry((b // self.cr) * (self.cr + 1) + self.cr)
        assert state == 6, 'partially present block without a sector bitmap block'
        spb = self.bs // self.lss
        first = (b % self.cr) * spb
        return self.read(off + first // 8, spb // 8)


def guid_bytes(text):
    t = text.strip('{}').replace('-', '')
    raw = bytes.fromhex(t)
    return struct.pack('<IHH', int(t[:8], 16), int(t[8:12], 16), int(t[12:16], 16)) + raw[8:]


def make_vhdx_parent(child, parent):
    c = Vhdx(child)
    guid = guid_bytes(c.locator['parent_linkage'])
    partial = [b for b in range((c.size + c.bs - 1) // c.bs) if c.block(b)[0] == 7]
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(os.path.abspath(parent)),
                                     suffix='.raw') as raw:
        raw.truncate(c.size)
        for b in sorted(set([0] + partial)):
            raw.seek(b * c.bs)
            n = min(c.bs, c.size - b * c.bs) // SEC
            raw.write(tag(b * c.bs // SEC, n))
        raw.flush()
        subprocess.run(['qemu-img', 'convert', '-q', '-f', 'raw', '-O', 'vhdx', '-o',
                        'subformat=dynamic,block_size=%d' % c.bs, raw.name, parent], check=True)
    with open(parent, 'r+b') as p:
        for off in (64 * 1024, 128 * 1024):
            p.seek(off)
            h = bytearray(p.read(4096))
            h[32:48] = guid
            h[4:8] = b'\0\0\0\0'
            h[4:8] = struct.pack('<I', crc32c(bytes(h)))
            p.seek(off)
            p.write(h)


def vhdx_expected(child, parent_path):
    c, p = Vhdx(child), Vhdx(parent_path)
    assert p.bs == c.bs and p.size == c.size and not p.diff
    runs = []
    spb = c.bs // c.lss
    for b in range((c.size + c.bs - 1) // c.bs):
        start = b * c.bs
        n = min(c.bs, c.size - start)
        pstate, poff = p.block(b)

        def parent_run(g, length):
            if pstate in (6, 7):
                runs.append((g, length, 1, True, False, True, poff + g - start))
            else:
                runs.append((g, length, 1, True, True, False, None))
        state, off = c.block(b)
        if state in (0, 1):
            parent_run(start, n)
        elif state in (2, 3):
            runs.append((start, n, 0, True, True, False, None))
        elif state == 6:
            runs.append((start, n, 0, True, False, True, off))
        elif state == 7:
            bm = c.bitmap(b)
            for s in range(n // c.lss):
                g = start + s * c.lss
                if bm[s // 8] >> (s % 8) & 1:
                    runs.append((g, c.lss, 0, True, False, True, off + s * c.lss))
                else:
                    parent_run(g, c.lss)
        else:
            raise SystemExit('child block %d has the invalid state %d' % (b, state))
    return c.size, runs


# ---- the check ----

def merge(runs):
    out = []
    for r in runs:
        if out:
            e = out[-1]
            if e[2:6] == r[2:6] and (e[6] is None) == (r[6] is None) and \
               (r[6] is None or e[6] + e[1] == r[6]) and e[0] + e[1] == r[0]:
                out[-1] = (e[0], e[1] + r[1]) + e[2:]
                continue
        out.append(r)
    return out


def check(kind, child, parent, mapjson):
    size, runs = (vhd_expected if kind == 'vhd' else vhdx_expected)(child, parent)
    want = merge(runs)
    got = [(e['start'], e['length'], e['depth'], e['present'], e['zero'], e['data'], e.get('offset'))
           for e in json.load(open(mapjson))]
    if got != want:
        for i, (g, w) in enumerate(zip(got, want)):
            if g != w:
                print('VIOLATED entry %d: imgaudit %s, expected %s' % (i, g, w))
                break
        else:
            print('VIOLATED %d entries from imgaudit, %d expected' % (len(got), len(want)))
        return 1
    # every parent-mapped range holds the tags of its own guest sectors
    tagged = 0
    with open(parent, 'rb') as pf:
        for (start, length, depth, present, zero, data, off) in want:
            if depth != 1 or off is None:
                continue
            for s in range(0, length, 64 * SEC):
                n = min(64 * SEC, length - s)
                pf.seek(off + s)
                if pf.read(n) != tag((start + s) // SEC, n // SEC):
                    print('VIOLATED parent bytes at %d do not hold guest sectors %d..' %
                          (off + s, (start + s) // SEC))
                    return 1
            tagged += length
    own = sum(r[1] for r in want if r[2] == 0 and r[5])
    print('TRUE entries=%d size=%d own-data=%d parent-data-tag-verified=%d' %
          (len(want), size, own, tagged))
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == 'vhd':
        make_vhd_parent(sys.argv[2], sys.argv[3])
    elif cmd == 'vhdx':
        make_vhdx_parent(sys.argv[2], sys.argv[3])
    elif cmd == 'check':
        kind = 'vhd' if open(sys.argv[2], 'rb').read(8) == b'conectix' else 'vhdx'
        return check(kind, sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == '__main__':
    sys.exit(main())
