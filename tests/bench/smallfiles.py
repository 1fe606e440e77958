#!/usr/bin/env python3
"""A store of small non-image files for walk_bench.sh, the same for a seed.

usage: smallfiles.py ROOT SEED [FILES [DIRS]]: DIRS directories (the first 40
in ROOT, then each under a random earlier one), FILES files of words (sizes
lognormal, median about 660 bytes, at most 256 KiB) in random directories.
"""
import os
import random
import sys

root = sys.argv[1]
random.seed(int(sys.argv[2]) if len(sys.argv) > 2 else 10)
nfiles = int(sys.argv[3]) if len(sys.argv) > 3 else 200000
ndirs = int(sys.argv[4]) if len(sys.argv) > 4 else 2052
dirs = [root]
os.makedirs(root, exist_ok=True)
for i in range(1, ndirs):
    parent = dirs[random.randrange(len(dirs))] if i > 40 else root
    d = os.path.join(parent, "d%04d" % i)
    os.mkdir(d); dirs.append(d)
words = [b"alpha", b"beta", b"log", b"INFO", b"request", b"done", b"error", b"42", b"\n", b"{", b"}"]
exts = [".txt", ".log", ".json", ".c", ".h", ".py", ".conf", ".md", "", ".dat"]
for i in range(nfiles):
    d = dirs[random.randrange(ndirs)]
    size = int(random.lognormvariate(6.5, 1.3))  # median ~ 665 bytes
    size = min(size, 256 * 1024)
    buf = bytearray()
    while len(buf) < size:
        buf += random.choice(words) + b" "
    with open(os.path.join(d, "f%06d%s" % (i, random.choice(exts))), "wb") as f:
        f.write(bytes(buf[:size]))
