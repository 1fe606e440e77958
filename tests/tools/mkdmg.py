#!/usr/bin/env python3
"""Write a small Apple UDIF (.dmg) image, from the published layout, for tests
(qemu-img cannot create dmg images).

usage: mkdmg.py OUT [--rsrc] [--no-bzip2]

The disk is 256 sectors (128 KiB): sectors 0-7 raw, 8-15 zero, 16-47 zlib,
48-63 ignore, 64-79 bzip2, 80-255 zero (a second blkx table, first sector
80), with a comment and a terminator chunk.  Guest bytes: sector s of the raw,
zlib and bzip2 chunks holds the byte (s % 251) + 1 repeated.  The blkx tables
go into an XML plist, or with --rsrc into a resource fork (no plist).
With --no-bzip2, sectors 64-79 are zlib too (qemu-img reads bzip2 chunks only
with qemu-block-extra installed).
"""
import base64
import bz2
import struct
import sys
import zlib

S = 512


def sectors(first, n):
    return b''.join(bytes([(s % 251) + 1]) * S for s in range(first, first + n))


def mish(first, chunks, data_off):
    out = bytearray(204)
    out[0:4] = b'mish'
    struct.pack_into('>IQQQ', out, 4, 1, first, sum(c[2] for c in chunks), data_off)
    struct.pack_into('>I', out, 200, len(chunks))
    for t, s, n, o, l in chunks:
        out += struct.pack('>IIQQQQ', t, 0, s, n, o, l)
    return bytes(out)


def main():
    out, rsrc, nobz = sys.argv[1], '--rsrc' in sys.argv[2:], '--no-bzip2' in sys.argv[2:]
    data = bytearray()
    chunks = []

    def add(t, s, n, payload=b''):
        chunks.append((t, s, n, len(data), len(payload)))
        data.extend(payload)

    add(1, 0, 8, sectors(0, 8))
    add(0, 8, 8)
    add(0x80000005, 16, 32, zlib.compress(sectors(16, 32)))
    add(2, 48, 16)
    if nobz:
        add(0x80000005, 64, 16, zlib.compress(sectors(64, 16)))
    else:
        add(0x80000006, 64, 16, bz2.compress(sectors(64, 16)))
    add(0x7ffffffe, 80, 0)
    add(0xffffffff, 80, 0)
    t1 = mish(0, chunks, 0)
    t2 = mish(80, [(0, 0, 176, 0, 0), (0xffffffff, 176, 0, 0, 0)], 0)
    body = bytearray(data)
    if rsrc:
        fork_off = len(body)
        res = b''.join(struct.pack('>I', len(t)) + t for t in (t1, t2))
        fork = struct.pack('>III', 256, 0, len(res)).ljust(256, b'\0') + res + bytes(16)
        body += fork
        rs, rl, xo, xl = fork_off, len(fork), 0, 0
    else:
        xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n<dict>\n'
               '\t<key>resource-fork</key>\n\t<dict>\n\t\t<key>blkx</key>\n\t\t<array>\n')
        for i, t in enumerate((t1, t2)):
            b = base64.b64encode(t).decode()
            lines = '\n'.join('\t\t\t\t' + b[k:k + 52] for k in range(0, len(b), 52))
            xml += ('\t\t\t<dict>\n\t\t\t\t<key>Data</key>\n\t\t\t\t<data>\n%s\n\t\t\t\t</data>\n'
                    '\t\t\t\t<key>ID</key>\n\t\t\t\t<string>%d</string>\n\t\t\t</dict>\n' % (lines, i))
        xml += '\t\t</array>\n\t</dict>\n</dict>\n</plist>\n'
        xo, xl, rs, rl = len(body), len(xml), 0, 0
        body += xml.encode()
    koly = bytearray(512)
    koly[0:4] = b'koly'
    struct.pack_into('>III', koly, 4, 4, 512, 1)
    struct.pack_into('>QQQQ', koly, 0x18, 0, len(data), rs, rl)
    struct.pack_into('>QQ', koly, 0xd8, xo, xl)
    struct.pack_into('>Q', koly, 0x1ec, 256)
    open(out, 'wb').write(bytes(body) + bytes(koly))


if __name__ == '__main__':
    main()
