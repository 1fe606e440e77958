#!/usr/bin/env python3
"""Oracle for `imgaudit scan`: for every image of the latest complete scan
whose status is ok, the v_map rows must equal the entries that
`imgaudit map --output=json` prints for it, and the file column must name the
file the offset points into: NULL without an offset, else the layer of the
chain at the row's depth (v_images.backing_path followed down), or a data
file or extent of that layer (its v_links other than 'backing').
Used by tests/scripts/test_scan_*.sh.

usage: scan_vmap_check.py DB IMGAUDIT [--min N]
Prints one line per mismatch and exits 1 if there is any, 0 otherwise.
"""
import json
import os
import sqlite3
import subprocess
import sys


def as_param(p):
    """Bind a path the way the scanner stored it: TEXT if valid UTF-8, else BLOB."""
    try:
        return p.decode("utf-8")
    except UnicodeDecodeError:
        return p


def main():
    db, imgaudit = sys.argv[1], sys.argv[2]
    minimum = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--min" else 1
    con = sqlite3.connect(db)
    con.text_factory = bytes
    paths = [r[0] for r in con.execute("SELECT path FROM v_images WHERE status = 'ok'")]
    backing = dict(con.execute("SELECT path, backing_path FROM v_images"))
    extra = {}
    for p, t in con.execute("SELECT path, target_path FROM v_links WHERE kind != 'backing'"):
        extra.setdefault(p, set()).add(t)

    def layer_files(p, depth):
        """The files a row at depth may point into; None when the chain leaves
        v_images (a layer beneath an --allow-root directory): not checked."""
        for _ in range(depth):
            p = backing.get(p)
            if p is None:
                return None
        return {p} | extra.get(p, set())
    bad = 0
    checked = 0
    for p in paths:
        if b"!" in p and not os.path.exists(p):
            continue  # an archive member: compared by the archive tests through extraction
        rows = con.execute(
            "SELECT start, length, depth, present, zero, data, compressed, offset, file FROM v_map "
            "WHERE path = ? ORDER BY start", (as_param(p),)).fetchall()
        d, b = os.path.split(p)
        out = subprocess.run([os.fsencode(imgaudit), b"map", b"--output=json", b],
                             cwd=d or b".", capture_output=True)
        if out.returncode != 0:
            print("FAIL %r: imgaudit map failed: %s" % (p, out.stderr.decode(errors="replace")))
            bad += 1
            continue
        want = [(e["start"], e["length"], e["depth"], int(e["present"]), int(e["zero"]),
                 int(e["data"]), int(e.get("compressed", False)), e.get("offset"))
                for e in json.loads(out.stdout)]
        got = [tuple(r[:8]) for r in rows]
        for r in rows:
            files = layer_files(p, r[2])
            ok = r[8] is None if r[7] is None else (files is None or r[8] in files)
            if not ok:
                bad += 1
                print("FAIL %r: row at %d (depth %d, offset %r) names file %r" % (p, r[0], r[2], r[7], r[8]))
                break
        if got != want:
            bad += 1
            print("FAIL %r: v_map has %d rows, map prints %d" % (p, len(got), len(want)))
            for i, (g, w) in enumerate(zip(got, want)):
                if g != w:
                    print("   first difference at row %d: v_map %r, map %r" % (i, g, w))
                    break
        checked += 1
    if checked < minimum:
        print("FAIL: only %d images compared, expected at least %d" % (checked, minimum))
        bad += 1
    print("v_map compared with imgaudit map for %d images, %d mismatches" % (checked, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
