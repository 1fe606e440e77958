#!/usr/bin/env python3
"""A golden base as months of writes leave it: a qcow2 v3 image whose
allocated 64 KiB clusters are scattered over the guest and, on the host, in
an order unrelated to the guest's, so that no two of them form one run.

usage: fragbase.py FILE CLUSTERS SEED [VIRTUAL_GIB]

The data clusters are holes of the host file (qcow2 reports them as data
all the same: it never asks the host file), so a base of 20,000 clusters
costs a few hundred kilobytes of disk.  Refcounts are exact: `qemu-img check`
finds nothing to repair.
"""
import random
import struct
import sys

CB = 16
CS = 1 << CB


def main():
    path, nclusters, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    vsize = (int(sys.argv[4]) if len(sys.argv) > 4 else 4) << 30
    rng = random.Random(seed)
    guest_clusters = vsize // CS
    if nclusters > guest_clusters:
        sys.exit("more clusters than the disk holds")
    l2_entries = CS // 8
    l1_size = (guest_clusters + l2_entries - 1) // l2_entries
    used_guest = sorted(rng.sample(range(guest_clusters), nclusters))
    l2_needed = sorted({g // l2_entries for g in used_guest})

    # host layout: header, refcount table, refcount blocks, L1, L2s, data
    meta = 1 + 1 + 1 + 1 + len(l2_needed)
    total = meta + nclusters
    if total > CS // 2:  # one refcount block of 16-bit entries covers 32,768 clusters
        nrb = (total + CS // 2 - 1) // (CS // 2)
        meta += nrb - 1
        total = meta + nclusters
    else:
        nrb = 1
    rct_off = 1 * CS
    rb_off = 2 * CS
    l1_off = (2 + nrb) * CS
    l2_off = {l2: (3 + nrb + i) * CS for i, l2 in enumerate(l2_needed)}
    data0 = 3 + nrb + len(l2_needed)
    total = data0 + nclusters
    host = list(range(data0, total))
    rng.shuffle(host)

    with open(path, "wb") as f:
        hdr = struct.pack(">4sIQIIQIIQQIIQQQQII", b"QFI\xfb", 3, 0, 0, CB, vsize, 0, l1_size,
                          l1_off, rct_off, 1, 0, 0, 0, 0, 0, 4, 104)
        f.write(hdr + b"\0" * 8)  # the end of the header extensions
        f.seek(rct_off)
        f.write(b"".join(struct.pack(">Q", rb_off + i * CS) for i in range(nrb)))
        f.seek(rb_off)
        f.write(struct.pack(">%dH" % total, *([1] * total)))
        f.seek(l1_off)
        l1 = [0] * l1_size
        for l2, off in l2_off.items():
            l1[l2] = off | (1 << 63)
        f.write(struct.pack(">%dQ" % l1_size, *l1))
        tables = {l2: [0] * l2_entries for l2 in l2_needed}
        for g, h in zip(used_guest, host):
            tables[g // l2_entries][g % l2_entries] = (h * CS) | (1 << 63)
        for l2, off in l2_off.items():
            f.seek(off)
            f.write(struct.pack(">%dQ" % l2_entries, *tables[l2]))
        f.truncate(total * CS)


if __name__ == "__main__":
    main()
