"""Helpers for the hostile-input tests: patch image headers, and judge an
strace log (what did the process open, and did it create sockets?)."""
import os
import re
import struct
import sys


def patch(path, offset, fmt, *values):
    """Write struct-packed values at offset."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, *values))


def qcow2_set_ext(path, ext_type, payload):
    """Replace (or add) a qcow2 header extension, keeping the others."""
    with open(path, "r+b") as f:
        h = bytearray(f.read(65536))
        version = struct.unpack(">I", h[4:8])[0]
        off = struct.unpack(">I", h[100:104])[0] if version >= 3 else 72
        exts = []
        while off + 8 <= len(h):
            t, n = struct.unpack(">II", h[off:off + 8])
            if t == 0:
                break
            if t != ext_type:
                exts.append((t, bytes(h[off + 8:off + 8 + n])))
            off += 8 + (n + 7) // 8 * 8
        exts.append((ext_type, payload))
        start = struct.unpack(">I", h[100:104])[0] if version >= 3 else 72
        out = b""
        for t, d in exts:
            out += struct.pack(">II", t, len(d)) + d + b"\0" * ((8 - len(d) % 8) % 8)
        out += b"\0" * 8
        f.seek(start)
        f.write(out)


ALLOWED_PREFIXES = ("/lib", "/usr/", "/etc/ld.so", "/proc/self/", "/sys/", "/dev/urandom",
                    "/etc/localtime")


def judge(log, root, forbidden):
    """Return a list of complaints about an strace -f log."""
    root = os.path.realpath(root)
    bad = []
    for line in open(log, errors="replace"):
        line = line.strip()
        m = re.search(r"\b(socket|connect)\(", line)
        if m and "= -1" not in line:
            bad.append("created a socket: " + line)
            continue
        m = re.search(r"\b(open|openat|openat2)\((?:[^,]*, )?\"((?:[^\"\\]|\\.)*)\"", line)
        if not m:
            continue
        path = m.group(2).encode().decode("unicode_escape")
        failed = re.search(r"= -1 ", line) is not None
        o_path = "O_PATH" in line
        if failed:
            continue
        if path.startswith(ALLOWED_PREFIXES):
            continue
        if m.group(1) == "openat2" or (m.group(1) == "openat" and not line.split("(", 1)[1].startswith("AT_FDCWD")):
            # Relative to a directory fd: openat2 from a root fd, RESOLVE_BENEATH.
            if "RESOLVE_BENEATH" in line or not path.startswith("/"):
                if any(f in path for f in forbidden) and not o_path:
                    bad.append("opened a forbidden file: " + line)
                continue
        full = os.path.realpath(path if path.startswith("/") else os.path.join(root, path))
        if any(full == os.path.realpath(f) or path == f for f in forbidden) and not o_path:
            bad.append("opened a forbidden file for I/O: " + line)
        if not (full == root or full.startswith(root + "/")) and not o_path:
            bad.append("opened a file outside the root: " + line)
    return bad


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "judge":
        problems = judge(sys.argv[2], sys.argv[3], sys.argv[4:])
        for p in problems:
            print(p)
        sys.exit(1 if problems else 0)
    elif cmd == "patch":
        patch(sys.argv[2], int(sys.argv[3], 0), sys.argv[4], *[int(v, 0) for v in sys.argv[5:]])
    elif cmd == "qcow2-ext":
        qcow2_set_ext(sys.argv[2], int(sys.argv[3], 0), sys.argv[4].encode())
    else:
        sys.exit("unknown command " + cmd)
