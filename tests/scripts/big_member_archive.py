# big_member_archive.py KIND OUT BIGNAME MIB [MEMBER...]: a tar.gz (KIND tgz)
# or a zip (KIND zip) whose first member BIGNAME is MIB MiB of log text
# (compressible, clearly not an image), followed by the files MEMBER... .
# Made in well under a second whatever MIB is: the compressed form of one
# 1 MiB chunk is repeated (concatenated gzip members for the tar.gz; for the
# zip, a deflate stream of full-flushed blocks, each decoding on its own).
import gzip, os, struct, sys, tarfile, zlib

kind, out, bigname, mib = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
members = sys.argv[5:]
line = b"2026-12-03T05:00:00Z web-01 app[4242]: GET /healthz 200 in 3 ms, nothing to see\n"
chunk = (line * (2**20 // len(line) + 1))[: 2**20]
size = mib * 2**20

def tar_header(name, n):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode = n, 1700000000, 0o644
    return ti.tobuf(format=tarfile.USTAR_FORMAT)

def pad(n):
    return b"\0" * (-n % 512)

if kind == "tgz":
    gz_chunk = gzip.compress(chunk, 1, mtime=0)
    with open(out, "wb") as f:
        f.write(gzip.compress(tar_header(bigname, size), 1, mtime=0))
        for _ in range(mib):
            f.write(gz_chunk)
        rest = pad(size)
        for m in members:
            data = open(m, "rb").read()
            rest += tar_header(m, len(data)) + data + pad(len(data))
        f.write(gzip.compress(rest + b"\0" * 1024, 6, mtime=0))
else:
    co = zlib.compressobj(1, zlib.DEFLATED, -15)
    block = co.compress(chunk) + co.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(1, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(chunk, crc)
    entries = [(bigname.encode(), crc, len(block) * mib + len(final), size, 8, None)]
    for m in members:
        data = open(m, "rb").read()
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        comp = c.compress(data) + c.flush()
        entries.append((m.encode(), zlib.crc32(data), len(comp), len(data), 8, comp))
    with open(out, "wb") as f:
        offs = []
        for name, crc, csize, usize, method, comp in entries:
            offs.append(f.tell())
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x5A21,
                                crc, csize, usize, len(name), 0) + name)
            if comp is None:
                for _ in range(mib):
                    f.write(block)
                f.write(final)
            else:
                f.write(comp)
        cd = f.tell()
        for (name, crc, csize, usize, method, _), off in zip(entries, offs):
            f.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0,
                                0x5A21, crc, csize, usize, len(name), 0, 0, 0, 0,
                                0o100644 << 16, off) + name)
        end = f.tell()
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                            end - cd, cd, 0))
